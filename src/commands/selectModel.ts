import * as path from 'node:path';
import * as vscode from 'vscode';
import { readModelSettings, saveModelSetting } from '../config';
import { MODEL_EXTENSIONS, MODEL_FILE_GLOB } from '../engine/modelFiles';

export const SELECT_MODEL_COMMAND = 'featureMaps.selectModel';
export const USE_AS_MODEL_COMMAND = 'featureMaps.useAsModel';

interface ModelPick extends vscode.QuickPickItem {
  /** undefined: the bundled model; 'browse': ask with a file dialog. */
  modelPath: string | undefined | 'browse';
}

/**
 * "Select Model…": the bundled model, every model file in the workspace, or Browse….
 * The choice goes into `featureMaps.model`, which re-extracts open panels.
 */
export function registerSelectModel(): vscode.Disposable {
  return vscode.Disposable.from(
    vscode.commands.registerCommand(SELECT_MODEL_COMMAND, async () => {
      const current = readModelSettings().modelPath;
      const picks: ModelPick[] = [
        {
          label: 'MobileNetV2 (bundled)',
          description: current ? undefined : 'in use',
          detail: 'Ships with the extension; needs no network.',
          modelPath: undefined,
        },
      ];
      const found = await vscode.workspace.findFiles(MODEL_FILE_GLOB, '**/node_modules/**', 200);
      if (found.length > 0)
        picks.push({ label: 'In this workspace', kind: vscode.QuickPickItemKind.Separator, modelPath: undefined });
      for (const uri of found.sort((a, b) => a.fsPath.localeCompare(b.fsPath))) {
        picks.push({
          label:
            path.basename(uri.fsPath) === 'model.json'
              ? path.basename(path.dirname(uri.fsPath))
              : path.basename(uri.fsPath),
          description: uri.fsPath === current ? 'in use' : undefined,
          detail: vscode.workspace.asRelativePath(uri),
          modelPath: uri.fsPath,
        });
      }
      picks.push({ label: '', kind: vscode.QuickPickItemKind.Separator, modelPath: undefined });
      picks.push({ label: '$(folder-opened) Browse…', modelPath: 'browse' });

      const picked = await vscode.window.showQuickPick(picks, {
        title: 'Feature Maps: Select Model',
        placeHolder: 'The model whose feature maps the panel shows',
        matchOnDetail: true,
      });
      if (!picked) return;
      let modelPath = picked.modelPath;
      if (modelPath === 'browse') {
        const chosen = await vscode.window.showOpenDialog({
          canSelectMany: false,
          openLabel: 'Use as Feature Map Model',
          filters: { Models: MODEL_EXTENSIONS.map((e) => e.slice(1)) },
        });
        if (!chosen?.[0]) return;
        modelPath = chosen[0].fsPath;
      }
      await saveModelSetting(modelPath);
    }),
    vscode.commands.registerCommand(USE_AS_MODEL_COMMAND, async (clicked?: unknown) => {
      if (clicked instanceof vscode.Uri) await saveModelSetting(clicked.fsPath);
      else await vscode.commands.executeCommand(SELECT_MODEL_COMMAND);
    }),
  );
}
