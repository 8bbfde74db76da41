import type { ExtractionResult, LayerData } from '../shared/protocol';
import type { ExtractRequest } from './engine';

/** Messages from the extension host to the engine worker. */
export type WorkerRequest =
  | { id: number; op: 'extract'; request: ExtractRequest }
  | { id: number; op: 'layerData'; resultKey: string; layer: string; count: number }
  /** Compute the layers a partial pass left out (cancellable until it starts). */
  | { id: number; op: 'complete'; resultKey: string }
  | { id: number; op: 'backend' }
  /** Stop request `target` at its next checkpoint; no reply. */
  | { id: number; op: 'cancel'; target: number };

export interface WorkerError {
  message: string;
  detail?: string;
  /** True when the message is written for the user (a bad image or model), false for a bug. */
  userFacing: boolean;
  /** The activations for this result are gone (evicted or the worker restarted). */
  notCached?: boolean;
}

/** Replies: every request but `cancel` gets exactly one. */
export type WorkerResponse =
  | { id: number; ok: true; op: 'extract'; value: ExtractionResult }
  | { id: number; ok: true; op: 'layerData'; value: LayerData }
  | { id: number; ok: true; op: 'complete'; value: null }
  | { id: number; ok: true; op: 'backend'; value: string }
  | { id: number; ok: false; error: WorkerError };

/** A line for the extension's log (which runtime a model runs on, and why), not a reply. */
export interface WorkerLog {
  op: 'log';
  line: string;
}

export interface WorkerInit {
  assetsDir: string;
}
