import * as vscode from 'vscode';
import type { PanelManager } from '../panel/panelManager';

export const EXPORT_COMMAND = 'featureMaps.export';

/** "Export Layer…": what the panel looked at last shows of its layer, saved (see panel/layerExport.ts). */
export function registerExportLayer(panels: PanelManager): vscode.Disposable {
  return vscode.commands.registerCommand(EXPORT_COMMAND, () => panels.exportCurrent());
}
