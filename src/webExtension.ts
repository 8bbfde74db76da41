// The extension in VS Code for the Web with no remote (vscode.dev, github.dev): its extension host
// runs in the browser, without Node, so the engine (native ONNX Runtime, sharp, a child process)
// cannot run there. Package.json's `browser` entry: every command, and a panel restored from an
// earlier session, says so in words instead of failing. With a remote (SSH, WSL, Dev Containers,
// Codespaces, code-server) the extension runs on the remote's Node (`extensionKind: workspace`)
// and this file is not used.
import * as vscode from 'vscode';

const COMMANDS = [
  'featureMaps.show',
  'featureMaps.selectModel',
  'featureMaps.useAsModel',
  'featureMaps.manageModels',
  'featureMaps.setArchitecture',
  'featureMaps.export',
];
const VIEW_TYPE = 'featureMaps.panel';

export const NOT_SUPPORTED =
  'Feature Maps does not run in VS Code for the Web without a remote: its model engine needs Node.js and native code. ' +
  'Use VS Code on your computer, or open the folder on a machine with Node.js (Remote - SSH, WSL, Dev Containers, Codespaces).';

export function activate(context: vscode.ExtensionContext): void {
  for (const command of COMMANDS) {
    context.subscriptions.push(vscode.commands.registerCommand(command, () => notSupported()));
  }
  // A panel left open in a desktop or remote window and restored here: a page that says why.
  context.subscriptions.push(
    vscode.window.registerWebviewPanelSerializer(VIEW_TYPE, {
      async deserializeWebviewPanel(panel: vscode.WebviewPanel) {
        panel.webview.options = { enableScripts: false };
        panel.webview.html = notSupportedPage();
      },
    }),
  );
}

function notSupported(): void {
  void vscode.window.showErrorMessage(NOT_SUPPORTED, 'Open VS Code Docs').then((choice) => {
    if (choice)
      void vscode.env.openExternal(vscode.Uri.parse('https://code.visualstudio.com/docs/remote/remote-overview'));
  });
}

function notSupportedPage(): string {
  const text = NOT_SUPPORTED.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  // VS Code's default webview styles give it the editor's font and colours: nothing else is loaded.
  return `<!DOCTYPE html><html lang="en"><head><meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'">
</head><body><p class="not-supported" role="alert">${text}</p></body></html>`;
}
