// A Node.js app behind ancmd with nothing but the http module.
//
// Run by examples/node-http/ancm.hcl. By hand:
//
//   PORT=8000 ANCM_TOKEN=secret node server.js
//   curl -H 'ANCM-Token: secret' http://127.0.0.1:8000/
'use strict';

const http = require('node:http');
const crypto = require('node:crypto');

const port = Number(process.env.ANCM_PORT || process.env.PORT || 8080);
// Empty when the app runs without ancmd: then no token is required and
// forwarded headers are not trusted.
const token = process.env.ANCM_TOKEN || '';
// ancmd does not strip the app's path_prefix: the app sees the full path.
const pathBase = (process.env.ANCM_PATH_BASE || '/').replace(/\/+$/, '');

// Compares in constant time; hashing first makes the lengths equal.
function tokenOK(req) {
  if (!token) return true;
  const got = req.headers['ancm-token'];
  if (typeof got !== 'string') return false; // missing
  const a = crypto.createHash('sha256').update(got).digest();
  const b = crypto.createHash('sha256').update(token).digest();
  return crypto.timingSafeEqual(a, b);
}

// The last X-Forwarded-For entry, which ancmd appended; trusted only
// behind ancmd.
function clientAddr(req) {
  const xff = req.headers['x-forwarded-for'];
  if (token && xff) return xff.split(',').pop().trim();
  return req.socket.remoteAddress;
}

function text(res, status, body) {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8' });
  res.end(body);
}

const server = http.createServer((req, res) => {
  if (!tokenOK(req)) return text(res, 400, 'Bad Request: missing or wrong ANCM-Token\n');

  let path = new URL(req.url, 'http://localhost').pathname;
  if (pathBase && (path === pathBase || path.startsWith(pathBase + '/'))) {
    path = path.slice(pathBase.length) || '/';
  }
  switch (path) {
    case '/':
      return text(res, 200, 'Hello from ancm (node http)\n');
    case '/healthz':
      return text(res, 200, 'ok\n');
    case '/env':
      return text(res, 200, [
        `ANCM_APP=${process.env.ANCM_APP || ''}`,
        `ANCM_INSTANCE=${process.env.ANCM_INSTANCE || ''}`,
        `ANCM_PATH_BASE=${process.env.ANCM_PATH_BASE || ''}`,
        `client=${clientAddr(req)}`,
      ].join('\n') + '\n');
    default:
      return text(res, 404, 'Not Found\n');
  }
});

server.listen(port, '127.0.0.1', () => {
  console.log(`listening on 127.0.0.1:${port}`);
});

// Graceful stop: ancmd sends SIGTERM (stop_signal) to the process group,
// then SIGKILL after shutdown_timeout (10s by default). Stop accepting,
// let in-flight requests finish, close idle keep-alive connections, exit 0.
function shutdown(signal) {
  console.log(`${signal}: shutting down`);
  server.close(() => {
    console.log('stopped');
    process.exit(0);
  });
  server.closeIdleConnections();
  setTimeout(() => {
    console.error('in-flight requests cut off');
    process.exit(1);
  }, 8000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
