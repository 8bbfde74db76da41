import * as path from 'node:path';
import * as vscode from 'vscode';
import { type ModelSettings, readModelSettings, saveModelSetting } from '../config';
import { CATALOG, CATALOG_PREFIX, type CatalogEntry } from '../engine/catalog';
import { CancelledError, UserFacingError, errorText } from '../engine/errors';
import { modelFileGlob, modelOpenDialogFilters, namesItsFolder } from '../engine/formats';
import { type ModelStore, megabytes } from '../modelStore';

export const SELECT_MODEL_COMMAND = 'featureMaps.selectModel';
export const USE_AS_MODEL_COMMAND = 'featureMaps.useAsModel';
export const MANAGE_MODELS_COMMAND = 'featureMaps.manageModels';

interface ModelPick extends vscode.QuickPickItem {
  /** undefined: the bundled model; 'browse': ask with a file dialog. */
  modelPath: string | undefined | 'browse';
  entry?: CatalogEntry;
}

/**
 * "Select Model…": the bundled model, the catalogue (downloaded on first use), every model
 * file in the workspace, or Browse…. The choice goes into `featureMaps.model`, which
 * re-extracts open panels.
 */
export function registerSelectModel(models: ModelStore): vscode.Disposable {
  return vscode.Disposable.from(
    vscode.commands.registerCommand(MANAGE_MODELS_COMMAND, () => manageDownloadedModels(models)),
    vscode.commands.registerCommand(SELECT_MODEL_COMMAND, async () => {
      const settings = readModelSettings();
      const current = settings.modelPath;
      const picks: ModelPick[] = [
        {
          label: 'MobileNetV2 (bundled)',
          description: current || settings.catalogSetting ? undefined : 'in use',
          detail: 'Ships with the extension; needs no network.',
          modelPath: undefined,
        },
        {
          label: 'Keras applications (downloaded once)',
          kind: vscode.QuickPickItemKind.Separator,
          modelPath: undefined,
        },
      ];
      for (const entry of CATALOG) {
        const bytes = await models.downloadedBytes(entry);
        const status = bytes === undefined ? `download ${megabytes(entry.approxBytes)} MB` : `${megabytes(bytes)} MB`;
        const inUse = settings.catalogSetting === CATALOG_PREFIX + entry.id;
        picks.push({
          label: `${bytes === undefined ? '$(cloud-download)' : '$(check)'} ${entry.name}`,
          description: inUse ? `in use · ${status}` : status,
          detail: entry.detail,
          modelPath: undefined,
          entry,
        });
      }
      const found = await vscode.workspace.findFiles(modelFileGlob(), '**/node_modules/**', 200);
      if (found.length > 0)
        picks.push({ label: 'In this workspace', kind: vscode.QuickPickItemKind.Separator, modelPath: undefined });
      for (const uri of found.sort((a, b) => a.fsPath.localeCompare(b.fsPath))) {
        picks.push({
          // A TF.js model.json is named by its folder.
          label: namesItsFolder(uri.fsPath) ? path.basename(path.dirname(uri.fsPath)) : path.basename(uri.fsPath),
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
      if (picked.entry) {
        await chooseCatalogModel(models, picked.entry, settings);
        return;
      }
      let modelPath = picked.modelPath;
      if (modelPath === 'browse') {
        const chosen = await vscode.window.showOpenDialog({
          canSelectMany: false,
          openLabel: 'Use as Feature Map Model',
          filters: modelOpenDialogFilters(),
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

/**
 * Downloads the entry first (with its progress notification) and only then makes it the
 * model, so a failed or cancelled download leaves the panel on the model that works.
 */
async function chooseCatalogModel(models: ModelStore, entry: CatalogEntry, settings: ModelSettings): Promise<void> {
  try {
    await models.ensure(entry, settings);
  } catch (error) {
    if (error instanceof CancelledError) {
      void vscode.window.showInformationMessage(
        `The download of ${entry.name} was cancelled; choosing it again resumes it.`,
      );
      return;
    }
    const message = error instanceof UserFacingError ? error.message : errorText(error);
    const retry = 'Retry';
    const answer = await vscode.window.showErrorMessage(
      `${message} The panel keeps its current model (the bundled MobileNetV2 always works offline).`,
      retry,
    );
    if (answer === retry) await chooseCatalogModel(models, entry, readModelSettings());
    return;
  }
  await saveModelSetting(CATALOG_PREFIX + entry.id);
}

interface CachedPick extends vscode.QuickPickItem {
  file: string;
  bytes: number;
}

/** "Manage Downloaded Models…": what the catalogue downloaded, with sizes; delete any of it. */
async function manageDownloadedModels(models: ModelStore): Promise<void> {
  const entries = await models.entries();
  if (entries.length === 0) {
    const select = 'Select Model…';
    const answer = await vscode.window.showInformationMessage(
      'No models are downloaded yet. Select Model… downloads a Keras application on first use.',
      select,
    );
    if (answer === select) await vscode.commands.executeCommand(SELECT_MODEL_COMMAND);
    return;
  }
  const inUse = readModelSettings().catalogSetting;
  const picks: CachedPick[] = entries.map(({ file, bytes, partial }) => {
    const entry = CATALOG.find((e) => e.fileName === file || e.fileName + '.part' === file);
    const used = entry && !partial && inUse === CATALOG_PREFIX + entry.id;
    return {
      label: entry ? entry.name : file,
      description: `${megabytes(bytes)} MB${partial ? ' · unfinished download' : ''}${used ? ' · in use' : ''}`,
      detail: file,
      file,
      bytes,
    };
  });
  const total = entries.reduce((sum, e) => sum + e.bytes, 0);
  const chosen = await vscode.window.showQuickPick(picks, {
    title: `Feature Maps: Downloaded Models (${megabytes(total)} MB in ${models.cacheDir})`,
    placeHolder: 'Pick the models to delete',
    canPickMany: true,
    matchOnDetail: true,
  });
  if (!chosen || chosen.length === 0) return;
  const bytes = chosen.reduce((sum, pick) => sum + pick.bytes, 0);
  const remove = 'Delete';
  const answer = await vscode.window.showWarningMessage(
    `Delete ${chosen.map((pick) => pick.label).join(', ')} (${megabytes(bytes)} MB)?`,
    { modal: true, detail: 'A deleted model is downloaded again the next time it is used.' },
    remove,
  );
  if (answer !== remove) return;
  for (const pick of chosen) await models.remove(pick.file);
  void vscode.window.showInformationMessage(
    `Deleted ${chosen.length === 1 ? chosen[0].label : `${chosen.length} downloads`} (${megabytes(bytes)} MB).`,
  );
}
