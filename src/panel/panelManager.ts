import * as vscode from 'vscode';
import type { EngineClient } from '../engine/client';
import { Disposable } from './disposable';
import { FeatureMapsPanel, VIEW_TYPE, type PanelSnapshot } from './featureMapsPanel';

/** Persisted by the webview (`vscode.setState`); the host rebuilds the panel from it after a reload. */
interface RestoredState {
  imagePath?: unknown;
}

/**
 * Keeps the one Feature Maps panel. Like the Markdown preview, the panel
 * follows the image the user picked last rather than opening a new one each time.
 */
export class PanelManager extends Disposable implements vscode.WebviewPanelSerializer<RestoredState> {
  private current: FeatureMapsPanel | undefined;

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly engine: EngineClient,
    private readonly log: vscode.LogOutputChannel,
  ) {
    super();
    this.register(vscode.window.registerWebviewPanelSerializer(VIEW_TYPE, this));
  }

  async showImage(imageUri: vscode.Uri): Promise<void> {
    if (!this.current) this.adopt(FeatureMapsPanel.create(this.extensionUri, this.engine, this.log));
    else this.current.reveal();
    await this.current?.show(imageUri);
  }

  async deserializeWebviewPanel(panel: vscode.WebviewPanel, state: RestoredState | undefined): Promise<void> {
    const restored = new FeatureMapsPanel(panel, this.extensionUri, this.engine, this.log);
    if (this.current) this.current.dispose();
    this.adopt(restored);
    if (typeof state?.imagePath === 'string') await restored.show(vscode.Uri.file(state.imagePath));
  }

  settingsChanged(): void {
    this.current?.updateSettings();
  }

  snapshot(): PanelSnapshot | undefined {
    return this.current?.snapshot();
  }

  override dispose(): void {
    this.current?.dispose();
    super.dispose();
  }

  private adopt(panel: FeatureMapsPanel): void {
    this.current = panel;
    panel.onDidDispose(() => {
      if (this.current === panel) this.current = undefined;
    });
  }
}
