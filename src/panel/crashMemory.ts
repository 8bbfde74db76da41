import type * as vscode from 'vscode';

const KEY = 'featureMaps.enginePassesThatStoppedIt';
/** How many such passes are remembered (the latest). */
const LIMIT = 20;

interface Remembered {
  imagePath: string;
  model: string;
  message: string;
}

/**
 * The (image, model) passes that stopped the engine (a crash, a hang), kept in the workspace's
 * state: a panel restored after a reload does not start one of them again unless the user asks.
 */
export class CrashMemory {
  constructor(private readonly state: vscode.Memento) {}

  /** What happened last time this pass ran, if it stopped the engine. */
  find(imagePath: string, model: string): string | undefined {
    return this.all().find((r) => r.imagePath === imagePath && r.model === model)?.message;
  }

  remember(imagePath: string, model: string, message: string): Thenable<void> {
    const others = this.all().filter((r) => r.imagePath !== imagePath || r.model !== model);
    return this.state.update(KEY, [...others, { imagePath, model, message }].slice(-LIMIT));
  }

  forget(imagePath: string, model: string): Thenable<void> | undefined {
    const all = this.all();
    const rest = all.filter((r) => r.imagePath !== imagePath || r.model !== model);
    return rest.length === all.length ? undefined : this.state.update(KEY, rest);
  }

  private all(): Remembered[] {
    const value = this.state.get<unknown>(KEY);
    return Array.isArray(value)
      ? value.filter(
          (r): r is Remembered =>
            typeof r === 'object' &&
            r !== null &&
            typeof (r as Remembered).imagePath === 'string' &&
            typeof (r as Remembered).model === 'string' &&
            typeof (r as Remembered).message === 'string',
        )
      : [];
  }
}
