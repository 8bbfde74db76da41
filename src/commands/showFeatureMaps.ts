import * as path from 'node:path';
import * as vscode from 'vscode';
import { IMAGE_EXTENSIONS } from '../engine/image';
import type { PanelManager } from '../panel/panelManager';

export const SHOW_COMMAND = 'featureMaps.show';

/**
 * "Show Feature Maps": from the explorer or the image preview's title bar (which
 * pass the file), or from the palette (the active image preview, else a file picker).
 */
export function registerShowFeatureMaps(panels: PanelManager): vscode.Disposable {
  return vscode.commands.registerCommand(SHOW_COMMAND, async (clicked?: unknown) => {
    const imageUri = clicked instanceof vscode.Uri ? clicked : (activeImagePreview() ?? (await pickImage()));
    if (!imageUri) return;
    if (!isImage(imageUri)) {
      void vscode.window.showErrorMessage(
        `Feature Maps works on images (${IMAGE_EXTENSIONS.join(' ')}); ${path.basename(imageUri.path)} is not one.`,
      );
      return;
    }
    await panels.showImage(imageUri);
  });
}

export function isImage(uri: vscode.Uri): boolean {
  return IMAGE_EXTENSIONS.includes(path.extname(uri.path).toLowerCase());
}

/** The file of the active editor tab when it is VS Code's image preview (or any tab of an image). */
function activeImagePreview(): vscode.Uri | undefined {
  const input = vscode.window.tabGroups.activeTabGroup.activeTab?.input;
  if (input instanceof vscode.TabInputCustom || input instanceof vscode.TabInputText) {
    return isImage(input.uri) ? input.uri : undefined;
  }
  return undefined;
}

async function pickImage(): Promise<vscode.Uri | undefined> {
  const picked = await vscode.window.showOpenDialog({
    canSelectMany: false,
    openLabel: 'Show Feature Maps',
    title: 'Choose an image to show its feature maps',
    filters: { Images: IMAGE_EXTENSIONS.map((e) => e.slice(1)) },
  });
  return picked?.[0];
}
