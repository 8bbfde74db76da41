export interface MirrorOptions {
  /** URL path (no leading slash) → file content. */
  files: Record<string, Buffer>;
  /** Served as /SHA256SUMS when given; otherwise that path is a 404, like a plain copy of Keras' folder. */
  checksums?: string;
  /** Throttle every transfer to about this rate. */
  bytesPerSecond?: number;
  /** Drop the connection after this many bytes of the first file transfer. */
  cutOnce?: number;
  port?: number;
}

export interface Mirror {
  /** Ends with a slash. */
  base: string;
  /** Every request's path and Range header ('' when none), in order. */
  requests: { path: string; range: string }[];
  close(): Promise<void>;
}

export function startMirror(options: MirrorOptions): Promise<Mirror>;
