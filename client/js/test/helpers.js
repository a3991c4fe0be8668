// Loopback servers for the JS client's tests: misbehaving gates, a scripted approval
// flow, and a small web server. Importing this module starts nothing.

import http from 'node:http';
import net from 'node:net';

/**
 * The running daemon's URL, the files directory its policy names and the approver's
 * private key (see policy.yaml).
 */
export function environment() {
  const url = process.env.TOLLGATE_URL;
  const files = process.env.TOLLGATE_TEST_FILES;
  const approverKey = process.env.TOLLGATE_TEST_APPROVER_KEY;
  if (!url || !files || !approverKey) {
    throw new Error(
      'set TOLLGATE_URL, TOLLGATE_TEST_FILES and TOLLGATE_TEST_APPROVER_KEY (tests/test_js_client.py does)',
    );
  }
  return { url, files, approverKey };
}

/** One JSON request with node:http; resolves to {status, body}. */
export function jsonRequest(method, url, payload) {
  return new Promise((resolve, reject) => {
    const body = payload === undefined ? undefined : JSON.stringify(payload);
    const request = http.request(
      url,
      { method, headers: { 'Content-Type': 'application/json' } },
      (response) => {
        readBody(response).then(
          (text) => resolve({ status: response.statusCode, body: JSON.parse(text) }),
          reject,
        );
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

/** A loopback port nobody listens on (bound, then released). */
export async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Reads whole HTTP/1.1 requests (head and body) off a raw socket. */
class RequestReader {
  constructor(socket) {
    this.buffer = Buffer.alloc(0);
    this.ended = false;
    this.wake = () => {};
    socket.on('data', (chunk) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      this.wake();
    });
    socket.on('end', () => {
      this.ended = true;
      this.wake();
    });
  }

  /** The next request, or null once the peer has closed. */
  async next() {
    for (;;) {
      const headEnd = this.buffer.indexOf('\r\n\r\n');
      if (headEnd >= 0) {
        const head = this.buffer.subarray(0, headEnd).toString('latin1');
        const match = /\r\ncontent-length:\s*(\d+)/i.exec(head);
        const total = headEnd + 4 + (match ? Number(match[1]) : 0);
        if (this.buffer.length >= total) {
          const request = this.buffer.subarray(0, total);
          this.buffer = this.buffer.subarray(total);
          return request;
        }
      }
      if (this.ended) return null;
      await new Promise((resolve) => {
        this.wake = resolve;
      });
    }
  }
}

export function httpAnswer(status, body) {
  const payload = Buffer.isBuffer(body) ? body : Buffer.from(body);
  const head = [
    `HTTP/1.1 ${status} X`,
    'Content-Type: application/json',
    `Content-Length: ${payload.length}`,
  ];
  return Buffer.concat([Buffer.from(`${head.join('\r\n')}\r\n\r\n`, 'latin1'), payload]);
}

/** Accepts loopback connections and runs `script(socket, reader, index)` on each. */
export async function rawServer(script) {
  const sockets = new Set();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    const index = server.accepted;
    server.accepted += 1;
    Promise.resolve(script(socket, new RequestReader(socket), index)).catch(() => socket.destroy());
  });
  server.accepted = 0;
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    get accepted() {
      return server.accepted;
    },
    close() {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}

/** A script answering every request on a connection with the same status and body. */
export function answering(status, body) {
  return async (socket, reader) => {
    while ((await reader.next()) !== null) socket.write(httpAnswer(status, body));
  };
}

async function listen(handler) {
  const server = http.createServer(handler);
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

async function readBody(request) {
  const chunks = [];
  for await (const chunk of request) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

function sendJson(response, status, payload) {
  const body = JSON.stringify(payload);
  response.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(body),
  });
  response.end(body);
}

/**
 * A stand-in for the gate's approval flow: a check without an approval needs one
 * (apr_1); each poll of apr_1 is held `hold` ms and then answered with the next state.
 */
export async function scriptedApprovals(states, hold = 200) {
  const checks = [];
  const polls = [];
  const server = await listen(async (request, response) => {
    if (request.method === 'POST') {
      const check = JSON.parse(await readBody(request));
      checks.push(check);
      if (check.approval === 'apr_1') {
        sendJson(response, 200, { allowed: true, decision: 'allow', reason: 'approved', rule: 'r' });
        return;
      }
      const approval = { id: 'apr_1', status: 'pending', expiresAt: '2030-01-01T00:00:00Z' };
      sendJson(response, 200, {
        allowed: false,
        decision: 'require_approval',
        reason: 'needs a human',
        rule: 'r',
        decisionId: '01J',
        approval,
      });
      return;
    }
    polls.push(request.url);
    if (!request.url.startsWith('/v1/approvals/apr_1?wait=')) {
      sendJson(response, 404, { allowed: false, error: { code: 'not_found', message: 'no such approval' } });
      return;
    }
    const wait = Number(request.url.split('=').pop());
    await new Promise((resolve) => setTimeout(resolve, Math.min(hold, wait * 1000)));
    const status = states.length > 1 ? states.shift() : states[0];
    const approval = { id: 'apr_1', status, expiresAt: '2030-01-01T00:00:00Z' };
    if (status === 'denied') Object.assign(approval, { approver: 'alice', reason: 'not today' });
    sendJson(response, 200, approval);
  });
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    checks,
    polls,
    close: () => server.close(),
  };
}

/**
 * A web server: /away redirects to `redirectTo` with status `code`, anything else echoes
 * path and auth. `hits`, `headers` and `bodies` are what each request sent.
 */
export async function webServer(redirectTo = '', code = 302) {
  const hits = [];
  const headers = [];
  const bodies = [];
  const server = await listen(async (request, response) => {
    hits.push(`${request.method} ${request.url}`);
    headers.push(request.headers);
    bodies.push(await readBody(request));
    if (request.url === '/away') {
      response.writeHead(code, { Location: redirectTo, 'Content-Length': 0 });
      response.end();
      return;
    }
    sendJson(response, 200, { path: request.url, auth: request.headers.authorization ?? null });
  });
  return {
    port: server.address().port,
    hits,
    headers,
    bodies,
    close: () => {
      server.closeAllConnections?.();
      server.close();
    },
  };
}
