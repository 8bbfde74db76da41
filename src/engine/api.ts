/**
 * The engine's contract: what the extension host (and the bench) may ask of the engine process,
 * declared once. The host calls it through `RpcClient<EngineApi>` (client.ts); the process
 * answers it with `serve<EngineApi>` (engineProcess.ts).
 */
import type {
  ChannelStats,
  ChannelValues,
  ExportRequest,
  ExtractionResult,
  LayerData,
  MapChoice,
  Prediction,
} from '../shared/protocol';
import type { RpcError } from '../shared/rpc';
import type { ExtractRequest } from './engine';
import type { ModelSource } from './model';
import {
  CancelledError,
  NotCachedError,
  PythonError,
  RejectedDownloadError,
  UserFacingError,
  errorText,
} from './errors';

export interface EngineApi {
  /** Decodes the image, runs the model (loading it first) and describes every layer. */
  extract(request: ExtractRequest): Promise<ExtractionResult>;
  /** Channels of a layer of a cached result, quantised for drawing: the first `count`, or those `channels` lists. */
  layerData(resultKey: string, layer: string, count: number, channels: number[] | null): Promise<LayerData>;
  /** Every channel's statistics of a layer of a cached result. */
  channelStats(resultKey: string, layer: string): Promise<ChannelStats>;
  /** One channel's exact values. */
  channelValues(resultKey: string, layer: string, channel: MapChoice): Promise<ChannelValues>;
  /** A file of a layer: a PNG of the grid or a channel, the layer as .npy, the statistics as CSV. */
  exportFile(resultKey: string, request: ExportRequest): Promise<Uint8Array>;
  /** The top-5 of a cached result, its classifier head computed first if the first pass left it out; null when none. */
  predictions(resultKey: string, labelsPath: string | null): Promise<Prediction[] | null>;
  /** Computes the layers a partial pass left out (cancellable until it starts). */
  complete(resultKey: string): Promise<null>;
  /** Opens a model ahead of its first image (the engine keeps it, as extract would); see EngineWarmUp. */
  prepare(model: ModelSource): Promise<null>;
  /** Which TensorFlow.js backend the process has ('wasm', or 'tensorflow' with tfjs-node). */
  backend(): Promise<string>;
  /** The engine process's memory now, and the most it ever held. */
  memory(): Promise<EngineMemory>;
}

export interface EngineMemory {
  rssBytes: number;
  peakRssBytes: number;
}

/** A call's progress: a forward pass starts, and the memory budget's estimate of what it allocates. */
export type EngineProgress =
  | { step: 'pass'; bytes: number }
  /** The model is being opened and this takes a while (a PyTorch file converted with Python): what is happening. */
  | { step: 'model'; message: string };

/** What the engine process sends on its own. */
export interface EngineEvents extends Record<string, unknown> {
  /** A line for the extension's log (which runtime a model runs on, and why). */
  log: string;
  /** Sent every second: the process is alive, and this is its memory. */
  heartbeat: EngineMemory;
}

/** Set on the engine process: `FEATURE_MAPS_TEST_FAULTS=1` lets the tests crash or hang it on purpose. */
export const TEST_FAULTS_ENV = 'FEATURE_MAPS_TEST_FAULTS';
/** With TEST_FAULTS_ENV, an image whose file name contains this aborts the process (as a native crash would). */
export const CRASH_IMAGE_MARK = 'crash-the-engine';
/** With TEST_FAULTS_ENV, an image whose file name contains this blocks the process's thread forever. */
export const HANG_IMAGE_MARK = 'hang-the-engine';

/** Engine errors as they cross to the host: the class survives, so the panel can tell them apart. */
export function encodeEngineError(error: unknown): RpcError {
  if (error instanceof PythonError)
    return { name: error.name, message: error.message, detail: error.detail, data: error.problem };
  if (error instanceof UserFacingError) return { name: error.name, message: error.message, detail: error.detail };
  if (error instanceof CancelledError) return { name: error.name, message: error.message };
  // Anything else is a bug, whatever its class: it crosses as a plain Error.
  return { name: 'Error', message: errorText(error), detail: error instanceof Error ? error.stack : undefined };
}

export function decodeEngineError(error: RpcError): Error {
  switch (error.name) {
    case 'NotCachedError':
      return new NotCachedError();
    case 'CancelledError':
      return new CancelledError();
    case 'RejectedDownloadError':
      return new RejectedDownloadError(error.message, error.detail);
    case 'PythonError':
      return new PythonError(error.message, error.data as PythonError['problem'], error.detail);
    case 'Error': {
      // A bug, not a bad input: the message is not written for the user.
      const bug = new Error(error.message);
      bug.stack = error.detail ?? bug.stack;
      return bug;
    }
    default: {
      // UserFacingError and its kinds (DownloadInterruptedError, …).
      const decoded = new UserFacingError(error.message, error.detail);
      decoded.name = error.name;
      return decoded;
    }
  }
}
