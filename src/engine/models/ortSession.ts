// What the engine needs of an ONNX Runtime session, wherever it lives: an `ort.InferenceSession`
// on the engine's own thread, or one held by the session worker (sessionWorker.ts).
import type * as ort from 'onnxruntime-node';

/** One session: its inputs and outputs, a pass, and letting it go. */
export interface OrtSession {
  readonly inputMetadata: readonly ort.InferenceSession.ValueMetadata[];
  readonly outputMetadata: readonly ort.InferenceSession.ValueMetadata[];
  /** One pass: the `fetches` outputs (every output when absent), by name. */
  run(feeds: Record<string, ort.Tensor>, fetches?: readonly string[]): Promise<Record<string, ort.Tensor>>;
  release(): Promise<void>;
}

/** Makes a session of ONNX bytes with the options given (the provider already chosen). */
export type SessionMaker = (bytes: Uint8Array, options: ort.InferenceSession.SessionOptions) => Promise<OrtSession>;

/** Sessions on the calling thread. */
export function sessionsInThread(runtime: typeof ort): SessionMaker {
  return async (bytes, options) => {
    const session = await runtime.InferenceSession.create(bytes, options);
    return {
      inputMetadata: session.inputMetadata,
      outputMetadata: session.outputMetadata,
      run: async (feeds, fetches) =>
        (fetches ? await session.run(feeds, [...fetches]) : await session.run(feeds)) as Record<string, ort.Tensor>,
      release: () => session.release(),
    };
  };
}
