import * as path from 'node:path';
import * as vscode from 'vscode';
import { architectureFromInput, architectureGroups } from './pytorchProblems';

interface ArchitectureItem extends vscode.QuickPickItem {
  /** The architecture this item stands for; undefined on separators. */
  architecture?: string;
}

/**
 * Asks which architecture a state_dict's weights belong to: a searchable list of the names the
 * user's Python offers (torchvision's and timm's models, grouped), and free text for anything else
 * (`module:callable` from the workspace, or a name the list lacks). Undefined when dismissed.
 */
export function askArchitecture(
  file: string,
  names: readonly string[],
  recent: readonly string[],
  current?: string,
): Promise<string | undefined> {
  const picker = vscode.window.createQuickPick<ArchitectureItem>();
  picker.title = `Which architecture are the weights of ${path.basename(file)}?`;
  picker.placeholder =
    'Search torchvision and timm models, or type torchvision:NAME, timm:NAME or module:callable (a function in your workspace that builds the model)';
  picker.matchOnDescription = true;
  picker.ignoreFocusOut = true;
  const listed: ArchitectureItem[] = [];
  for (const group of architectureGroups(names, recent)) {
    listed.push({ label: group.label, kind: vscode.QuickPickItemKind.Separator });
    for (const name of group.names) {
      listed.push({
        label: name,
        description: name === current ? 'chosen before' : undefined,
        architecture: name,
      });
    }
  }
  const all = new Set(names);
  const update = () => {
    const typed = picker.value.trim();
    if (!typed || all.has(typed)) {
      picker.items = listed;
      return;
    }
    const architecture = architectureFromInput(typed, names);
    // Labelled with exactly what was typed, so VS Code's filter ranks it first (an exact match) and Enter takes it.
    const typedItem: ArchitectureItem = {
      label: typed,
      description:
        architecture !== typed
          ? `Use “${typed}”: ${architecture}`
          : typed.includes(':') && !/^(torchvision|timm):/.test(typed)
            ? `Use “${typed}”: module:callable from your workspace`
            : `Use “${typed}”`,
      alwaysShow: true,
      architecture,
    };
    picker.items = [typedItem, ...listed];
  };
  update();
  if (names.length === 0) {
    picker.placeholder =
      'Type torchvision:NAME (e.g. torchvision:resnet50), timm:NAME or module:callable (a function in your workspace that builds the model)';
  }
  return new Promise<string | undefined>((resolve) => {
    let answer: string | undefined;
    picker.onDidChangeValue(update);
    picker.onDidAccept(() => {
      answer = picker.selectedItems[0]?.architecture ?? picker.activeItems[0]?.architecture;
      if (!answer && picker.value.trim()) answer = architectureFromInput(picker.value, names);
      if (answer) picker.hide();
    });
    picker.onDidHide(() => {
      picker.dispose();
      resolve(answer);
    });
    picker.show();
  });
}

/**
 * Asks before unpickling a file (a whole `torch.save(model)`): loading it runs code it contains.
 * True when the user chose Load.
 */
export async function askPickle(file: string): Promise<boolean> {
  const load = 'Load';
  const answer = await vscode.window.showWarningMessage(
    'Loading this file can run code it contains.',
    {
      modal: true,
      detail:
        `${file}\n\n` +
        `It is a pickled Python object (a whole model saved with torch.save). Unpickling it runs whatever code it names, with your permissions. Load it only if you trust where it came from.\n\n` +
        'TorchScript, .pt2 (torch.export), state_dict and safetensors files open without this question.',
    },
    load,
  );
  return answer === load;
}
