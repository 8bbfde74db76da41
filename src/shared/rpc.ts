/**
 * One typed request/reply contract over any message channel: a child process's IPC (host ↔
 * engine) or a webview's postMessage (host ↔ panel). The contract is declared once, as an
 * interface whose methods return promises; the caller's `RpcClient` and the callee's handlers
 * are both typed from it, so the two sides cannot drift apart. Calls can be cancelled, report
 * progress, and carry typed arrays (transferred where the channel can).
 *
 * No vscode, DOM or Node imports: both the webview and the engine process use this file.
 * After microsoft/vscode-js-profile-visualizer's heap-snapshot `rpc.ts`.
 */

/** A contract `T`: every method takes plain (structured-clonable) values and returns a promise. */
export type Contract<T> = { [K in keyof T]: (...args: never[]) => Promise<unknown> };

/** Named one-way messages a side sends besides replies (logs, heartbeats…), with their data. */
export type EventMap = { [event: string]: unknown };

/** What travels on the channel. */
export type RpcMessage =
  | { rpc: 'call'; id: number; method: string; args: unknown[] }
  | { rpc: 'cancel'; id: number }
  | { rpc: 'progress'; id: number; data: unknown }
  | { rpc: 'reply'; id: number; ok: true; value: unknown }
  | { rpc: 'reply'; id: number; ok: false; error: RpcError }
  | { rpc: 'event'; event: string; data: unknown };

/** An error as it crosses the channel; `name` picks the class it becomes again on the other side. */
export interface RpcError {
  name: string;
  message: string;
  /** The technical detail (a library's own words, a stack). */
  detail?: string;
  /** What an error class carries beyond its words (structured-clone data). */
  data?: unknown;
}

/** Sends and receives messages; `transfer` lists buffers the channel may move instead of copying. */
export interface RpcChannel {
  /** May return when the message has left (a process's IPC), for a sender about to block its thread. */
  post(message: RpcMessage, transfer?: ArrayBuffer[]): void | Promise<void>;
  /** Subscribes to incoming messages; returns the unsubscribe function. */
  onMessage(listener: (message: RpcMessage) => void): () => void;
}

/** A message port as Node's worker threads have them (a Worker, or the worker's parentPort). */
export interface MessagePortLike {
  postMessage(message: unknown, transfer?: ArrayBuffer[]): void;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  off(event: 'message', listener: (message: unknown) => void): unknown;
}

/** The channel over one side of a worker thread's port: buffers are moved, not copied. */
export function portChannel(port: MessagePortLike): RpcChannel {
  return {
    post: (message, transfer) => port.postMessage(message, transfer),
    onMessage(listener) {
      const onMessage = (message: unknown) => {
        if (isRpcMessage(message)) listener(message);
      };
      port.on('message', onMessage);
      return () => port.off('message', onMessage);
    },
  };
}

export function isRpcMessage(value: unknown): value is RpcMessage {
  if (typeof value !== 'object' || value === null) return false;
  const m = value as Record<string, unknown>;
  switch (m.rpc) {
    case 'call':
      return Number.isInteger(m.id) && typeof m.method === 'string' && Array.isArray(m.args);
    case 'cancel':
    case 'progress':
      return Number.isInteger(m.id);
    case 'reply':
      return Number.isInteger(m.id) && typeof m.ok === 'boolean';
    case 'event':
      return typeof m.event === 'string';
    default:
      return false;
  }
}

/** What a handler gets besides its arguments. */
export interface CallContext {
  /** Aborted when the caller cancels. */
  signal: AbortSignal;
  /** Sends a progress report to the caller (its `onProgress`); settles when the channel has sent it. */
  progress(data: unknown): void | Promise<void>;
}

/** The callee's side of a contract: one handler per method, with the call's context first. */
export type Handlers<T extends Contract<T>> = {
  [K in keyof T]: (context: CallContext, ...args: Parameters<T[K]>) => ReturnType<T[K]>;
};

export interface ServeOptions {
  /** Turns a thrown value into what crosses the channel (default: its name, message and stack). */
  encodeError?: (error: unknown) => RpcError;
}

/** The callee: answers every call with exactly one reply; emits events. */
export interface RpcServer<E extends EventMap> {
  emit<K extends keyof E & string>(event: K, data: E[K]): void;
  dispose(): void;
}

/** Answers calls coming in on `channel` with `handlers`. */
export function serve<T extends Contract<T>, E extends EventMap = EventMap>(
  channel: RpcChannel,
  handlers: Handlers<T>,
  options: ServeOptions = {},
): RpcServer<E> {
  const encode = options.encodeError ?? defaultEncodeError;
  const running = new Map<number, AbortController>();
  const unsubscribe = channel.onMessage((message) => {
    if (message.rpc === 'cancel') {
      running.get(message.id)?.abort();
      return;
    }
    if (message.rpc !== 'call') return;
    const { id, method, args } = message;
    const handler = Object.prototype.hasOwnProperty.call(handlers, method)
      ? (handlers[method as keyof T] as unknown as (context: CallContext, ...args: unknown[]) => Promise<unknown>)
      : undefined;
    if (!handler) {
      channel.post({ rpc: 'reply', id, ok: false, error: { name: 'Error', message: `No such method: ${method}` } });
      return;
    }
    const job = new AbortController();
    running.set(id, job);
    const context: CallContext = {
      signal: job.signal,
      progress: (data) => channel.post({ rpc: 'progress', id, data }),
    };
    Promise.resolve()
      .then(() => handler(context, ...args))
      .then(
        (value) => void channel.post({ rpc: 'reply', id, ok: true, value }, transferables(value)),
        (error: unknown) => void channel.post({ rpc: 'reply', id, ok: false, error: encode(error) }),
      )
      .finally(() => running.delete(id));
  });
  return {
    emit: (event, data) => void channel.post({ rpc: 'event', event, data }),
    dispose: () => {
      unsubscribe();
      for (const job of running.values()) job.abort();
      running.clear();
    },
  };
}

export interface CallOptions {
  /** Cancels the call: the promise rejects at once with the client's cancelled error. */
  signal?: AbortSignal;
  /**
   * Asks the callee to stop, but keeps waiting for its reply (usually its own cancelled error):
   * for a caller that needs to know when the callee is really done.
   */
  stop?: AbortSignal;
  onProgress?: (data: unknown) => void;
  /** Rejects with an RpcTimeoutError when no reply came within this time. */
  timeoutMs?: number;
}

/** No reply came in time. */
export class RpcTimeoutError extends Error {
  constructor(
    readonly method: string,
    readonly timeoutMs: number,
  ) {
    super(`No answer to ${method} within ${timeoutMs} ms.`);
    this.name = 'RpcTimeoutError';
  }
}

export interface ClientOptions<E extends EventMap> {
  /** Turns a crossed error back into an error object (default: a plain Error with its message). */
  decodeError?: (error: RpcError) => Error;
  /** The error a cancelled call rejects with. */
  cancelledError?: () => Error;
  onEvent?: <K extends keyof E & string>(event: K, data: E[K]) => void;
}

interface PendingCall {
  method: string;
  resolve(value: unknown): void;
  reject(error: unknown): void;
  onProgress?: (data: unknown) => void;
}

/** The caller's side of a contract. */
export class RpcClient<T extends Contract<T>, E extends EventMap = EventMap> {
  private nextId = 1;
  private readonly pending = new Map<number, PendingCall>();
  private readonly unsubscribe: () => void;

  constructor(
    private readonly channel: RpcChannel,
    private readonly options: ClientOptions<E> = {},
  ) {
    this.unsubscribe = channel.onMessage((message) => this.receive(message));
  }

  /** Calls `method`; the reply's value, typed by the contract. */
  call<K extends keyof T & string>(method: K, args: Parameters<T[K]>, options: CallOptions = {}): ReturnType<T[K]> {
    return this.send(method, args, options) as ReturnType<T[K]>;
  }

  /** How many calls wait for their reply. */
  get pendingCount(): number {
    return this.pending.size;
  }

  /** Rejects every pending call with `error` (the other side is gone) and stops listening. */
  dispose(error: Error): void {
    this.unsubscribe();
    this.rejectAll(error);
  }

  rejectAll(error: Error): void {
    const calls = [...this.pending.values()];
    this.pending.clear();
    for (const call of calls) call.reject(error);
  }

  private send(
    method: string,
    args: unknown[],
    { signal, stop, onProgress, timeoutMs }: CallOptions,
  ): Promise<unknown> {
    const cancelled = this.options.cancelledError ?? (() => new Error('Cancelled'));
    if (signal?.aborted) return Promise.reject(cancelled());
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const settle = () => {
        this.pending.delete(id);
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        stop?.removeEventListener('abort', onStop);
      };
      const giveUp = (error: Error) => {
        if (!this.pending.has(id)) return;
        settle();
        reject(error);
        this.channel.post({ rpc: 'cancel', id });
      };
      const onAbort = () => giveUp(cancelled());
      const onStop = () => this.pending.has(id) && this.channel.post({ rpc: 'cancel', id });
      this.pending.set(id, {
        method,
        onProgress,
        resolve: (value) => (settle(), resolve(value)),
        reject: (error) => (settle(), reject(error)),
      });
      signal?.addEventListener('abort', onAbort, { once: true });
      stop?.addEventListener('abort', onStop, { once: true });
      if (timeoutMs !== undefined) timer = setTimeout(() => giveUp(new RpcTimeoutError(method, timeoutMs)), timeoutMs);
      this.channel.post({ rpc: 'call', id, method, args }, transferables(args));
    });
  }

  private receive(message: RpcMessage): void {
    switch (message.rpc) {
      case 'reply': {
        const call = this.pending.get(message.id);
        if (!call) return; // cancelled or timed out meanwhile
        if (message.ok) call.resolve(message.value);
        else call.reject((this.options.decodeError ?? defaultDecodeError)(message.error));
        return;
      }
      case 'progress':
        this.pending.get(message.id)?.onProgress?.(message.data);
        return;
      case 'event':
        this.options.onEvent?.(message.event as keyof E & string, message.data as E[keyof E & string]);
        return;
    }
  }
}

function defaultEncodeError(error: unknown): RpcError {
  if (error instanceof Error) return { name: error.name, message: error.message, detail: error.stack };
  return { name: 'Error', message: String(error) };
}

function defaultDecodeError(error: RpcError): Error {
  const decoded = new Error(error.message);
  decoded.name = error.name;
  return decoded;
}

/**
 * The buffers of the tight typed arrays in `value` (a few levels deep): they can move to the
 * other side instead of being copied. A view on part of a buffer is left alone (moving its
 * buffer would take the rest away from whoever shares it).
 */
export function transferables(value: unknown, depth = 3, found: ArrayBuffer[] = []): ArrayBuffer[] {
  if (ArrayBuffer.isView(value)) {
    const buffer = value.buffer;
    if (
      buffer instanceof ArrayBuffer &&
      value.byteOffset === 0 &&
      value.byteLength === buffer.byteLength &&
      !found.includes(buffer)
    ) {
      found.push(buffer);
    }
  } else if (depth > 0 && typeof value === 'object' && value !== null) {
    for (const child of Object.values(value)) transferables(child, depth - 1, found);
  }
  return found;
}

/**
 * `value` with every typed array (a few levels deep) made tight: a copy of its own bytes where it
 * is a view on part of a larger buffer. Node's IPC ('advanced' serialization) delivers typed
 * arrays as views into the whole message's buffer, and a webview is sent a view's entire buffer.
 */
export function tightArrays<T>(value: T, depth = 4): T {
  if (ArrayBuffer.isView(value)) {
    const tight = value.byteOffset === 0 && value.byteLength === value.buffer.byteLength;
    return tight || !('slice' in value) ? value : ((value as unknown as Uint8Array).slice() as unknown as T);
  }
  if (depth > 0 && typeof value === 'object' && value !== null) {
    for (const [key, child] of Object.entries(value)) {
      const fixed = tightArrays(child, depth - 1);
      if (fixed !== child) (value as Record<string, unknown>)[key] = fixed;
    }
  }
  return value;
}
