// A local stand-in for Keras' download server (or a mirror of it), used by the unit and UI
// tests: serves files with Range support, optionally slowly or cutting the first transfer,
// without Content-Length, endlessly, or behind redirects.
import * as http from 'node:http';
import * as path from 'node:path';

const CHUNK = 64 * 1024;

/**
 * @param {import('./mirror.d.mts').MirrorOptions} options
 * @returns {Promise<import('./mirror.d.mts').Mirror>}
 */
export async function startMirror(options) {
  /** @type {import('./mirror.d.mts').MirrorRequest[]} */
  const requests = [];
  let cutsLeft = options.cutOnce === undefined ? 0 : 1;
  const server = http.createServer((req, res) => {
    const urlPath = decodeURIComponent(new URL(req.url ?? '/', 'http://mirror').pathname).replace(/^\/+/, '');
    const auth = /^Basic (.+)$/.exec(req.headers.authorization ?? '');
    /** @type {import('./mirror.d.mts').MirrorRequest} */
    const record = {
      path: urlPath,
      range: req.headers.range ?? '',
      credentials: auth ? Buffer.from(auth[1], 'base64').toString('utf8') : '',
      sent: 0,
    };
    requests.push(record);
    const location = options.redirects?.[urlPath];
    if (location !== undefined) return void res.writeHead(302, { location }).end();
    if (path.posix.basename(urlPath) === 'SHA256SUMS' && options.checksums !== undefined) {
      res.writeHead(200, { 'content-type': 'text/plain' }).end(options.checksums);
      return;
    }
    if (options.endless?.includes(urlPath)) {
      // No Content-Length and no end: only the client can stop it.
      res.writeHead(200);
      const chunk = Buffer.alloc(CHUNK, 0x5a);
      const pump = () => {
        if (res.destroyed) return;
        record.sent += chunk.length;
        res.write(chunk, () => setImmediate(pump));
      };
      pump();
      return;
    }
    const body = options.files[urlPath];
    if (!body) return void res.writeHead(404).end('not here');
    const match = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = match ? Number(match[1]) : 0;
    if (start >= body.length) return void res.writeHead(416, { 'content-range': `bytes */${body.length}` }).end();
    res.writeHead(match ? 206 : 200, {
      ...(options.noContentLength ? {} : { 'content-length': body.length - start }),
      ...(match
        ? { 'content-range': `bytes ${start}-${body.length - 1}/${options.noContentLength ? '*' : body.length}` }
        : {}),
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
      record.sent += chunk.length;
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
