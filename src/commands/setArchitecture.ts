import * as path from 'node:path';
import * as vscode from 'vscode';
import { readModelSettings } from '../config';
import type { PanelManager } from '../panel/panelManager';
import { isPytorchFile } from '../python/pytorchProblems';
import type { PytorchSupport } from '../python/pytorchSupport';
import { SELECT_MODEL_COMMAND } from './selectModel';

export const SET_ARCHITECTURE_COMMAND = 'featureMaps.setArchitecture';

/**
 * "Set PyTorch Architecture…": which architecture the current model file's weights are (a
 * state_dict or safetensors file), asked as when the model first opens; open panels run again
 * with the answer.
 */
export function registerSetArchitecture(pytorch: PytorchSupport, panels: PanelManager): vscode.Disposable {
  return vscode.commands.registerCommand(SET_ARCHITECTURE_COMMAND, async () => {
    const modelPath = readModelSettings(panels.currentImage()).modelPath;
    if (!modelPath || !isPytorchFile(modelPath)) {
      const select = 'Select Model…';
      const answer = await vscode.window.showInformationMessage(
        `The model in use is ${modelPath ? path.basename(modelPath) : 'not a file'}, not a PyTorch file: the architecture is asked for PyTorch weights (a state_dict or .safetensors file).`,
        select,
      );
      if (answer === select) await vscode.commands.executeCommand(SELECT_MODEL_COMMAND);
      return;
    }
    if (await pytorch.chooseArchitecture(modelPath)) panels.modelAnswersChanged();
  });
}
