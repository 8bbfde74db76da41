export interface MirrorOptions {
  /** URL path (no leading slash) → file content. */
  files: Record<string, Buffer>;
  /** Served as /SHA256SUMS (or any …/SHA256SUMS) when given; otherwise a 404, like a plain copy of Keras' folder. */
  checksums?: string;
  /** Throttle every transfer to about this rate. */
  bytesPerSecond?: number;
  /** Drop the connection after this many bytes of the first file transfer. */
  cutOnce?: number;
  /** Send files without Content-Length (chunked), as some servers and proxies do. */
  noContentLength?: boolean;
  /** URL paths served as an endless stream of bytes, without Content-Length. */
  endless?: string[];
  /** URL path → where it redirects (302), absolute or relative. */
  redirects?: Record<string, string>;
  port?: number;
}

export interface MirrorRequest {
  path: string;
  /** The Range header, '' when none. */
  range: string;
  /** `user:password` of a Basic Authorization header, '' when none. */
  credentials: string;
  /** Body bytes written so far. */
  sent: number;
}

export interface Mirror {
  /** Ends with a slash. */
  base: string;
  /** Every request, in order. */
  requests: MirrorRequest[];
  close(): Promise<void>;
}

export function startMirror(options: MirrorOptions): Promise<Mirror>;
