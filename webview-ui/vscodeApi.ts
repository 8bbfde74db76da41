/** The one handle on the VS Code webview API; `acquireVsCodeApi` may only be called once. */
import type { FromWebview } from '../src/shared/protocol';
import { isRpcMessage, type RpcChannel, type RpcMessage } from '../src/shared/rpc';

/** What the panel keeps across reloads via `vscode.setState`. The host may add its own keys. */
export interface WebviewState {
  imagePath?: string;
  selectedLayer?: string;
  showAllLayers?: boolean;
  collapsedGroups?: string[];
  /** LayerViewState, checked when read (state.ts). */
  layerView?: unknown;
  [key: string]: unknown;
}

interface VsCodeApi {
  postMessage(message: FromWebview | RpcMessage): void;
  getState(): unknown;
  setState(state: unknown): void;
}

declare function acquireVsCodeApi(): VsCodeApi;

const api: VsCodeApi = acquireVsCodeApi();

export function post(message: FromWebview): void {
  api.postMessage(message);
}

/** The channel of the webview's calls to the host (PanelHostApi) and their replies. */
export const hostChannel: RpcChannel = {
  post: (message) => api.postMessage(message),
  onMessage(listener) {
    const onMessage = (event: MessageEvent<unknown>) => {
      if (isRpcMessage(event.data)) listener(event.data);
    };
    window.addEventListener('message', onMessage);
    return () => window.removeEventListener('message', onMessage);
  },
};

export function loadState(): WebviewState {
  const raw = api.getState();
  return typeof raw === 'object' && raw !== null ? (raw as WebviewState) : {};
}

/** Merges into the saved state so keys written by the host (e.g. imagePath) survive. */
export function saveState(patch: Partial<WebviewState>): void {
  api.setState({ ...loadState(), ...patch });
}
