import * as vscode from 'vscode';
import { Disposable } from './disposable';
import { FeatureMapsPanel, VIEW_TYPE, type PanelServices, type PanelSnapshot } from './featureMapsPanel';

/** Persisted by the webview (`vscode.setState`); the host rebuilds the panel from it after a reload. */
interface RestoredState {
  imagePath?: unknown;
}

/**
 * Keeps the Feature Maps panels. Like the Markdown preview, the panel the user
 * looked at last follows the image they pick next, rather than a new panel
 * opening each time. There is usually one; after a window reload VS Code may
 * revive an older one beside it (only once its tab is shown), and both work.
 */
export class PanelManager extends Disposable implements vscode.WebviewPanelSerializer<RestoredState> {
  /** Open panels, the most recently active last. */
  private readonly panels: FeatureMapsPanel[] = [];
  /** Panels opened in place of one that did not load: they are not replaced again. */
  private readonly replacements = new WeakSet<FeatureMapsPanel>();

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly services: PanelServices,
  ) {
    super();
    this.register(vscode.window.registerWebviewPanelSerializer(VIEW_TYPE, this));
  }

  private get current(): FeatureMapsPanel | undefined {
    return this.panels.at(-1);
  }

  async showImage(imageUri: vscode.Uri): Promise<void> {
    let panel = this.current;
    if (panel) panel.reveal();
    else panel = this.adopt(FeatureMapsPanel.create(this.extensionUri, this.services));
    await panel.show(imageUri);
  }

  async deserializeWebviewPanel(webviewPanel: vscode.WebviewPanel, state: RestoredState | undefined): Promise<void> {
    const restored = this.adopt(new FeatureMapsPanel(webviewPanel, this.extensionUri, this.services));
    if (typeof state?.imagePath === 'string') await restored.restore(vscode.Uri.file(state.imagePath));
    else restored.showNothing();
  }

  settingsChanged(): void {
    for (const panel of this.panels) panel.updateSettings();
  }

  /** Export… on the panel the user looked at last (or says there is none). */
  async exportCurrent(): Promise<void> {
    if (this.current) await this.current.exportLayer();
    else void vscode.window.showInformationMessage('Show the feature maps of an image first, then export its layer.');
  }

  /** The image the panel the user looked at last shows. */
  currentImage(): vscode.Uri | undefined {
    return this.current?.image;
  }

  /** The user answered a question about the model (its architecture): panels show it again. */
  modelAnswersChanged(): void {
    for (const panel of this.panels) panel.rerun();
  }

  /** The engine runs on another device now (`featureMaps.executionProvider`): panels show their image again. */
  executionProviderChanged(): void {
    for (const panel of this.panels) panel.rerun();
  }

  /** Another Python interpreter, or the folder is trusted now: panels that failed on Python try again. */
  pythonChanged(): void {
    for (const panel of this.panels) panel.retryPythonProblem();
  }

  snapshot(): PanelSnapshot | undefined {
    return this.current?.snapshot();
  }

  override dispose(): void {
    for (const panel of this.panels.splice(0)) panel.dispose();
    super.dispose();
  }

  /**
   * A panel whose page never loaded (its frame broken, see FeatureMapsPanel.watchForReady):
   * a new panel takes its place, in its column, with its image. Once: when the new one does
   * not load either, a notification says so and offers to reload the window.
   */
  private async replace(stalled: FeatureMapsPanel): Promise<void> {
    if (this.replacements.has(stalled)) {
      this.services.log.warn('the panel opened in place of one that did not load did not load either');
      const reload = 'Reload Window';
      const answer = await vscode.window.showErrorMessage(
        'The Feature Maps panel did not load (VS Code did not load its page, twice). Reloading the window usually helps.',
        reload,
      );
      if (answer === reload) await vscode.commands.executeCommand('workbench.action.reloadWindow');
      return;
    }
    this.services.log.warn('opening a new panel in place of the one that did not load');
    const image = stalled.image;
    const fresh = this.adopt(FeatureMapsPanel.create(this.extensionUri, this.services, stalled.panel.viewColumn));
    this.replacements.add(fresh);
    stalled.dispose();
    if (image) await fresh.restore(image);
    else fresh.showNothing();
  }

  private adopt(panel: FeatureMapsPanel): FeatureMapsPanel {
    this.panels.push(panel);
    panel.onDidBecomeActive(() => {
      this.panels.splice(this.panels.indexOf(panel), 1);
      this.panels.push(panel);
    });
    panel.onDidStall(() => void this.replace(panel));
    panel.onDidDispose(() => {
      const index = this.panels.indexOf(panel);
      if (index >= 0) this.panels.splice(index, 1);
    });
    return panel;
  }
}
