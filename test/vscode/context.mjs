// Shared state for the UI tests (test/ui/*.mjs), filled in by test/vscode/run.mjs before it
// loads them. Tests read it inside hooks and tests, not at import time:
//   import { ctx } from '../vscode/context.mjs';
//   it('...', async () => { await ctx.page.click(...) });
export const ctx = {
  /** @type {import('playwright-core').Page} the workbench page, already open on `workspace` */
  page: undefined,
  /** the running code-server: { url, port, logFile, extensionsDir, ... } (see harness.mjs) */
  server: undefined,
  /** absolute path of the temp workspace folder (fixture images + notes.txt) */
  workspace: undefined,
  /** absolute path of the repo root */
  repoRoot: undefined,
  /** 'development' (extensionDevelopmentPath) or 'vsix' (the packaged extension, installed) */
  mode: undefined,
  /** The local stand-in for Keras' download server ({ base, requests }), when the oracle's weights exist. */
  mirror: undefined,
  /** Reloads a fresh workbench in `page` (closes editors and panels of earlier tests). */
  reload: async () => {},
};
