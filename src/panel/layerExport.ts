import * as path from 'node:path';
import * as vscode from 'vscode';
import type { EngineClient } from '../engine/client';
import { errorText } from '../engine/errors';
import { SORT_LABELS } from '../shared/channelOrder';
import type { ExportKind, ExportRequest, LayerInfo, LayerViewInfo, ViewSettings } from '../shared/protocol';

/** What is on show in a panel: what can be exported of it. */
export interface ExportContext {
  engine: Pick<EngineClient, 'exportFile'>;
  resultKey: string;
  image: vscode.Uri;
  layer: LayerInfo;
  view: LayerViewInfo;
  settings: ViewSettings;
  log: vscode.LogOutputChannel;
}

interface ExportPick extends vscode.QuickPickItem {
  exportKind: ExportKind;
  /** The file name's end: `<image>.<layer><suffix>`. */
  suffix: string;
  filters: Record<string, string[]>;
}

/**
 * Export…: asks what to save of the layer on show (the grid as PNG, the zoomed or first channel
 * as PNG, the layer as .npy in Keras' or PyTorch's layout, every channel's statistics as CSV),
 * then where (a save dialog that starts beside the image), and writes it there. The file is made
 * by the engine, where the activations are, and written through VS Code (a remote's disk too).
 */
export async function exportLayer(context: ExportContext): Promise<vscode.Uri | undefined> {
  const { layer, view } = context;
  const [height, width, channels] = layer.shape;
  const channel = view.channel ?? view.channels[0] ?? 0;
  const overlaid = view.overlay !== undefined ? ', over the image' : '';
  const by = view.sort === 'index' ? '' : `, by ${SORT_LABELS[view.sort]}`;
  const picks: ExportPick[] = [
    {
      label: '$(symbol-array) Layer as .npy, H×W×C (Keras)',
      description: `float32 ${height}×${width}×${channels}`,
      exportKind: 'npy-hwc',
      suffix: '.npy',
      filters: { 'NumPy array': ['npy'] },
    },
    {
      label: '$(symbol-array) Layer as .npy, C×H×W (PyTorch)',
      description: `float32 ${channels}×${height}×${width}`,
      exportKind: 'npy-chw',
      suffix: '.chw.npy',
      filters: { 'NumPy array': ['npy'] },
    },
    {
      label: '$(file-media) Grid as PNG',
      description: `the ${view.channels.length} channels on show${by}${overlaid}`,
      exportKind: 'grid-png',
      suffix: '.grid.png',
      filters: { 'PNG image': ['png'] },
    },
    {
      label: `$(file-media) Channel #${channel} as PNG`,
      description: `${view.channel !== undefined ? 'the zoomed channel' : 'the first channel on show'}${overlaid}`,
      exportKind: 'channel-png',
      suffix: `.${channel}.png`,
      filters: { 'PNG image': ['png'] },
    },
    {
      label: '$(table) Channel statistics as CSV',
      description: `${channels} rows: min, max, mean, std, fraction active`,
      exportKind: 'stats-csv',
      suffix: '.stats.csv',
      filters: { CSV: ['csv'] },
    },
  ];
  const pick = await vscode.window.showQuickPick(picks, {
    title: `Export ${layer.name} of ${path.basename(context.image.path)}`,
    placeHolder: 'What to save',
  });
  if (!pick) return undefined;
  const stem = path.basename(context.image.path).replace(/\.[^.]+$/, '');
  const name = `${stem}.${layer.name.replace(/[^\w.-]+/g, '_')}${pick.suffix}`;
  const target = await vscode.window.showSaveDialog({
    defaultUri: vscode.Uri.joinPath(context.image, '..', name),
    filters: pick.filters,
    title: `Save ${pick.label.replace(/^\$\([^)]*\) /, '')}`,
  });
  if (!target) return undefined;
  const request: ExportRequest = {
    kind: pick.exportKind,
    layer: layer.name,
    channels: view.channels,
    channel,
    colormap: context.settings.colormap,
    normalization: context.settings.normalization,
    overlay: view.overlay,
  };
  try {
    const bytes = await context.engine.exportFile(context.resultKey, request);
    await vscode.workspace.fs.writeFile(target, bytes);
  } catch (error) {
    void vscode.window.showErrorMessage(`Could not export ${layer.name}: ${errorText(error)}`);
    return undefined;
  }
  context.log.info(`exported ${layer.name} (${pick.exportKind}) to ${target.fsPath}`);
  void vscode.window.showInformationMessage(`Saved ${path.basename(target.path)}.`);
  return target;
}
