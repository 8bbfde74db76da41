// A local stand-in for Keras' download server (or a mirror of it), used by the unit and UI
// tests: serves files with Range support, optionally slowly or cutting the first transfer.
import * as http from 'node:http';

const CHUNK = 64 * 1024;

/**
 * @param {import('./mirror.d.mts').MirrorOptions} options
 * @returns {Promise<import('./mirror.d.mts').Mirror>}
 */
export async function startMirror(options) {
  /** @type {{ path: string; range: string }[]} */
  const requests = [];
  let cutsLeft = options.cutOnce === undefined ? 0 : 1;
  const server = http.createServer((req, res) => {
    const urlPath = decodeURIComponent(new URL(req.url ?? '/', 'http://mirror').pathname).replace(/^\/+/, '');
    requests.push({ path: urlPath, range: req.headers.range ?? '' });
    if (urlPath === 'SHA256SUMS' && options.checksums !== undefined) {
      res.writeHead(200, { 'content-type': 'text/plain' }).end(options.checksums);
      return;
    }
    const body = options.files[urlPath];
    if (!body) return void res.writeHead(404).end('not here');
    const match = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = match ? Number(match[1]) : 0;
    if (start >= body.length) return void res.writeHead(416, { 'content-range': `bytes */${body.length}` }).end();
    res.writeHead(match ? 206 : 200, {
      'content-length': body.length - start,
      ...(match ? { 'content-range': `bytes ${start}-${body.length - 1}/${body.length}` } : {}),
    });
    const cutAt = cutsLeft > 0 && options.cutOnce !== undefined ? start + options.cutOnce : Infinity;
    if (cutAt !== Infinity) cutsLeft--;
    const delayMs = options.bytesPerSecond ? (CHUNK / options.bytesPerSecond) * 1000 : 0;
    let offset = start;
    const pump = () => {
      if (res.destroyed) return;
      if (offset >= body.length) return void res.end();
      if (offset >= cutAt) return void req.socket.destroy();
      const end = Math.min(offset + CHUNK, body.length, cutAt);
      const chunk = body.subarray(offset, end);
      offset = end;
      res.write(chunk, () => (delayMs > 0 ? setTimeout(pump, delayMs) : pump()));
    };
    pump();
  });
  await new Promise((resolve) => server.listen(options.port ?? 0, '127.0.0.1', () => resolve(undefined)));
  const address = /** @type {import('node:net').AddressInfo} */ (server.address());
  return {
    base: `http://127.0.0.1:${address.port}/`,
    requests,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
