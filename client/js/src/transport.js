// Keep-alive HTTP/1.1 to the gate, so that a check costs one round trip.
//
// One keep-alive agent per Gate pools the connections (idle sockets do not keep the
// process alive). A request that fails with a reset on a reused socket, because the gate
// closed it while idle at that very moment, before any byte of an answer came back, is
// sent once more on a fresh one (after a byte, the gate has read the check). An answer
// is used only whole: one cut short, or one without a length (whose cut could not be
// seen), is a failure, as in the Python client. Every failure rejects with TransportError
// whose kind is unreachable, timeout or bad_answer. The gate is connected to at the one
// address its URL names, never at a resolver's choice: `localhost` is 127.0.0.1, as in
// the Python client.

import http from 'node:http';
import https from 'node:https';
import net from 'node:net';

import { BAD_ANSWER, TIMEOUT, UNREACHABLE } from './answers.js';
import { TransportError } from './errors.js';

// A gate answer is a few hundred bytes; anything this large is not one.
export const MAX_ANSWER_BYTES = 1 << 20;
// The limit on an answer's heads together, interim 1xx ones included (Node's default
// for one head), and on a head's field lines: the Python client's (docs/clients.md).
export const MAX_HEAD_BYTES = 16384;
const MAX_HEAD_LINES = 100;
const USER_AGENT = 'tollgate-client-js/0.1.0';
const CLOSED_BY_PEER = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED']);

// The gate's default --host (the one address it binds for `localhost`), and the IPv6
// loopback for a gate told `--host ::1`.
const GATE_V4 = '127.0.0.1';
const GATE_V6 = '::1';

/**
 * The one address a gate URL's host (brackets allowed) or a socket's address names, or
 * null if it names no gate address, as in the Python client: `localhost` (any case, a
 * trailing dot allowed) is 127.0.0.1, never looked up, since in a pod /etc/hosts lists
 * `::1 localhost` first and anything in the pod may listen on [::1] at the gate's port;
 * besides, 127.0.0.1 and ::1 (a gate told `--host ::1`). Other loopback addresses
 * (127.0.0.2), `::ffff:127.x`, `0.0.0.0` and `::` name none: the gate listens on one
 * address, and any other port on the loopback can be taken by anyone in the pod.
 */
export function gateAddress(host) {
  const bare = String(host).replace(/^\[|\]$/g, '').toLowerCase();
  if (bare === 'localhost' || bare === 'localhost.') return GATE_V4;
  if (net.isIPv4(bare)) return bare === GATE_V4 ? GATE_V4 : null;
  // The WHATWG URL parser and the socket both give IPv6 addresses compressed.
  return net.isIPv6(bare) && bare === GATE_V6 ? GATE_V6 : null;
}

// A gate URL as the Python client reads it: the scheme, `//`, a host (an IPv6 literal in
// brackets), an optional port, then a path of printable ASCII without a backslash. The
// WHATWG parser takes much else and rewrites it (`http:127.0.0.1`, `http://@127.0.0.1`, a
// backslash as `/`, tabs and newlines dropped), so that whoever reads TOLLGATE_URL could
// see another URL than the one used (red-team review of 2026-12-07).
const WRITTEN_URL =
  /^https?:\/\/(\[[0-9A-Fa-f:.]+\]|[^\s\p{C}:/?#@\\[\]]+)(?::[0-9]*)?(?:[/?#][\x21-\x5b\x5d-\x7e]*)?$/iu;

/**
 * Throws TypeError unless `url` is http(s)://host[:port][/prefix] and, unless
 * `allowRemote`, its host names the gate's loopback address (see gateAddress).
 */
export function parseGateUrl(url, allowRemote = false) {
  const written = WRITTEN_URL.exec(String(url));
  if (written === null) {
    throw new TypeError(
      `tollgate URL must be http(s)://host[:port][/prefix], written plainly (no spaces, ` +
        `control characters or backslashes; a path in ASCII): ${JSON.stringify(url)}`,
    );
  }
  const parsed = new URL(url);
  if ((parsed.protocol !== 'http:' && parsed.protocol !== 'https:') || !parsed.hostname) {
    throw new TypeError(`tollgate URL must be http(s)://host[:port], not ${JSON.stringify(url)}`);
  }
  if (parsed.username || parsed.password || parsed.search || parsed.hash) {
    throw new TypeError(
      `tollgate URL must not carry userinfo, a query or a fragment: ${JSON.stringify(url)}`,
    );
  }
  // The host as written, not as the WHATWG parser rewrites it (127.1, 0x7f000001,
  // %6cocalhost and fullwidth letters all become a loopback name); only an IPv6 literal
  // is taken compressed, as the Python client compares it.
  const host = written[1].startsWith('[') ? parsed.hostname : written[1];
  if (!allowRemote && gateAddress(host) === null) {
    // The gate is a sidecar on the pod's loopback, listening on one address. Anything
    // elsewhere, named by whoever could set TOLLGATE_URL, could answer every check with an
    // allow; so could anything in the pod listening on another loopback address
    // (127.0.0.2, or [::1] while the gate holds 127.0.0.1).
    throw new TypeError(
      `tollgate URL must name the gate's loopback address (127.0.0.1, localhost or [::1]), ` +
        `not ${JSON.stringify(url)}; pass allowRemote: true for a gate at any other address`,
    );
  }
  return parsed;
}

/**
 * A `lookup` for net.connect that answers the gate's one address and asks no resolver
 * (dns.lookup would put ::1 first where /etc/hosts lists it first, as the kubelet's does).
 */
function fixedLookup(address) {
  const family = net.isIPv6(address) ? 6 : 4;
  return (hostname, options, callback) => {
    if (options.all) callback(null, [{ address, family }]);
    else callback(null, address, family);
  };
}

export class Transport {
  constructor(url, { allowRemote = false } = {}) {
    this.endpoint = parseGateUrl(url, allowRemote);
    // The one address connected to, never a resolver's answer: localhost is 127.0.0.1.
    // null only for a host allowed by allowRemote, connected to as Node does.
    this.address = gateAddress(this.endpoint.hostname);
    this.url = url.replace(/\/+$/, '');
    this.basePath = this.endpoint.pathname.replace(/\/+$/, '');
    const module = this.endpoint.protocol === 'https:' ? https : http;
    this.module = module;
    // proxyEnv: null: never through a proxy from the environment (Node >= 24 with
    // NODE_USE_ENV_PROXY), which could answer in the gate's place. rejectUnauthorized:
    // an https gate's certificate is checked whatever NODE_TLS_REJECT_UNAUTHORIZED says
    // (red-team review of 2026-12-07), as in the Python client.
    this.agent = new module.Agent({ keepAlive: true, proxyEnv: null, rejectUnauthorized: true });
    this.connectionsOpened = 0;
    this.seen = new WeakSet();
  }

  close() {
    this.agent.destroy();
  }

  /**
   * Send one request; resolve to {status, body}. Rejects with TransportError.
   * @param {string} method @param {string} path @param {Buffer|null} body @param {number} timeoutMs
   */
  async request(method, path, body, timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    try {
      return await this.once(method, path, body, deadline, timeoutMs, false);
    } catch (error) {
      if (!(error instanceof RetryOnFreshSocket)) throw error;
      return await this.once(method, path, body, deadline, timeoutMs, true);
    }
  }

  once(method, path, body, deadline, timeoutMs, fresh) {
    return new Promise((resolve, reject) => {
      const headers = { 'User-Agent': USER_AGENT, Accept: 'application/json' };
      if (body !== null) {
        headers['Content-Type'] = 'application/json';
        headers['Content-Length'] = String(body.length);
      }
      const hostname = this.endpoint.hostname.replace(/^\[|\]$/g, '');
      const request = this.module.request({
        protocol: this.endpoint.protocol,
        hostname,
        port: this.endpoint.port || undefined,
        method,
        path: this.basePath + path,
        headers,
        // A fresh socket for the one retry: the pooled one was just found closed. That
        // socket is made from these options, not the agent's: they verify too.
        agent: fresh ? false : this.agent,
        rejectUnauthorized: true,
        // Node's strict parser and head limit whatever NODE_OPTIONS says: with
        // --insecure-http-parser a length and chunks together, a NUL in a field, a folded
        // line or a bare LF read as an allow, and --max-http-header-size raised the limit
        // the Python client keeps (red-team review).
        insecureHTTPParser: false,
        maxHeaderSize: MAX_HEAD_BYTES,
        // localhost is connected to at 127.0.0.1, never looked up (an IP literal never
        // is); the Host header and a TLS server name stay the URL's.
        ...(this.address !== null && !net.isIP(hostname) ? { lookup: fixedLookup(this.address) } : {}),
      });
      let settled = false;
      let timer = null;
      // Bytes the socket had read before this request: a retry is safe only while none
      // of an answer has come back.
      let socketUsed = null;
      let readBefore = 0;
      const finish = (fn, value) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        fn(value);
      };
      // The deadline settles the promise itself, whatever state the request is in: a
      // request Node has already closed (as after a 101) emits nothing more when destroyed.
      const expire = () => {
        const reason = `tollgate at ${this.url} did not answer within ${timeoutMs} ms`;
        const error = new TransportError(TIMEOUT, reason);
        finish(reject, error);
        request.destroy(error);
      };
      timer = setTimeout(expire, Math.max(0, deadline - Date.now()));
      // A 101 (or any upgrade) is not an answer. Without an 'upgrade' listener Node would
      // close the request without any event; with one, it hands over the socket, which is
      // closed here, and the status is read like any other non-200.
      request.on('upgrade', (response, socket) => {
        socket.destroy();
        finish(resolve, { status: response.statusCode, body: Buffer.alloc(0) });
      });
      // The heads are read beside Node's parser, and before it (see HeadScan).
      const scan = new HeadScan();
      const onData = (chunk) => {
        const fault = scan.feed(chunk);
        if (fault !== null) {
          const error = new TransportError(BAD_ANSWER, `tollgate at ${this.url} sent no valid HTTP answer (${fault})`);
          finish(reject, error);
          request.destroy(error);
        }
        if (fault !== null || scan.done) socketUsed?.removeListener('data', onData);
      };
      request.on('close', () => socketUsed?.removeListener('data', onData));
      request.on('socket', (socket) => {
        socketUsed = socket;
        readBefore = socket.bytesRead;
        socket.prependListener('data', onData);
        if (!this.seen.has(socket)) {
          this.seen.add(socket);
          this.connectionsOpened += 1;
        }
      });
      request.on('error', (error) => {
        if (error instanceof TransportError) return finish(reject, error);
        if (CLOSED_BY_PEER.has(error.code)) {
          if (socketUsed !== null && socketUsed.bytesRead > readBefore) {
            // Part of an answer came back: the gate read, decided and recorded the check,
            // and sending it again would decide (and spend a rate-limit token) twice.
            // On a fresh socket as on a reused one, this is an answer cut short (as in the
            // Python client).
            const reason = `tollgate at ${this.url} cut its answer short`;
            return finish(reject, new TransportError(BAD_ANSWER, reason));
          }
          if (!fresh && request.reusedSocket) return finish(reject, new RetryOnFreshSocket());
        }
        finish(reject, this.explain(error));
      });
      request.on('response', (response) => {
        const peer = response.socket.remoteAddress ?? '';
        if (this.address !== null && gateAddress(peer) !== this.address) {
          // A second look: an answer from any other address is not the gate's.
          const error = new TransportError(
            UNREACHABLE,
            `tollgate at ${this.url} connected to ${peer}, not ${this.address}`,
          );
          finish(reject, error);
          request.destroy(error);
          return;
        }
        const fault = statusLineFault(response);
        if (fault !== null) {
          const error = new TransportError(BAD_ANSWER, `tollgate at ${this.url} sent no valid HTTP answer (${fault})`);
          finish(reject, error);
          request.destroy(error);
          return;
        }
        const chunks = [];
        let size = 0;
        response.on('data', (chunk) => {
          size += chunk.length;
          if (size > MAX_ANSWER_BYTES) {
            request.destroy(
              new TransportError(BAD_ANSWER, `tollgate's answer is larger than ${MAX_ANSWER_BYTES} bytes`),
            );
            return;
          }
          chunks.push(chunk);
        });
        response.on('end', () =>
          finish(resolve, { status: response.statusCode, body: Buffer.concat(chunks) }),
        );
        response.on('error', (error) => finish(reject, this.explain(error)));
        response.on('aborted', () =>
          finish(reject, new TransportError(BAD_ANSWER, `tollgate at ${this.url} cut its answer short`)),
        );
        const coding = contentCoding(response);
        if (coding !== null) {
          // Read as it is, a coded body is not the JSON it may look like (the gate sends
          // none, and refuses a request with one), as in the Python client.
          const error = new TransportError(
            BAD_ANSWER,
            `tollgate at ${this.url} sent an answer with Content-Encoding ${JSON.stringify(coding)}`,
          );
          finish(reject, error);
          request.destroy(error);
          return;
        }
        if (!hasLength(response)) {
          // The body would run to the close, and a close in the middle of it would look the
          // same; the gate always says how long its answer is (as the Python client).
          const error = new TransportError(
            BAD_ANSWER,
            `tollgate at ${this.url} sent an answer without a length (no Content-Length), ` +
              'so a cut one could not be told from a whole one',
          );
          finish(reject, error);
          request.destroy(error);
        }
      });
      request.end(body ?? undefined);
    });
  }

  explain(error) {
    if (error instanceof TransportError) return error;
    if (error.code === 'ECONNREFUSED') {
      return new TransportError(UNREACHABLE, `tollgate at ${this.url} is unreachable (connection refused)`);
    }
    if (error.code === 'ECONNRESET' || String(error.code).startsWith('HPE_')) {
      return new TransportError(
        BAD_ANSWER,
        `tollgate at ${this.url} sent no valid HTTP answer (${error.message})`,
      );
    }
    return new TransportError(UNREACHABLE, `tollgate at ${this.url} is unreachable (${error.message})`);
  }
}

class RetryOnFreshSocket extends Error {}

/**
 * The heads of one answer (interim 1xx ones, then its own), read from the socket's bytes
 * as they arrive, ahead of Node's parser, for what that parser lets through or cannot
 * report: it reads a status line of any protocol name as HTTP (`ICE/1.0 200`, `RTSP/1.0
 * 200` as HTTP/1.0), skips an empty line before it, takes any number of field lines and
 * limits each head on its own, so a thousand `100 Continue` heads passed. The Python
 * client refuses each of these (red-team review of 2026-12-07); the rest of the grammar
 * is left to Node's strict parser.
 */
export class HeadScan {
  constructor() {
    this.pending = Buffer.alloc(0); // the bytes of the head being read
    this.size = 0; // of the heads already read
    this.done = false; // the answer's own head has been read
  }

  /** Reads the next bytes; returns what is wrong with the heads so far, or null. */
  feed(chunk) {
    if (this.done) return null;
    this.pending = Buffer.concat([this.pending, chunk]);
    for (;;) {
      const end = this.pending.indexOf('\r\n\r\n');
      const length = end === -1 ? this.pending.length : end + 4;
      if (this.size + length > MAX_HEAD_BYTES) return `the answer's head is over ${MAX_HEAD_BYTES} bytes`;
      if (end === -1 && this.pending.length < 9) return null;
      const protocol = this.pending.subarray(0, 9).toString('latin1');
      if (protocol !== 'HTTP/1.1 ' && protocol !== 'HTTP/1.0 ') {
        return `a status line other than HTTP/1.0 or HTTP/1.1: ${JSON.stringify(protocol)}`;
      }
      if (end === -1) return null;
      const head = this.pending.subarray(0, length);
      // Counted as http.client counts them, the blank line ending the head included.
      let lines = -1;
      for (let at = head.indexOf('\r\n'); at !== -1; at = head.indexOf('\r\n', at + 2)) lines += 1;
      if (lines > MAX_HEAD_LINES) return `more than ${MAX_HEAD_LINES} header lines`;
      const status = Number(head.subarray(9, 12).toString('latin1'));
      this.size += length;
      this.pending = this.pending.subarray(length);
      const interim = status >= 100 && status < 200 && status !== 101;
      if (!interim) {
        this.done = true;
        this.pending = Buffer.alloc(0);
        return null;
      }
    }
  }
}

/**
 * What is wrong with the answer's status line, or null. Node's parser takes any
 * "HTTP/d.d" and control characters in the reason phrase; RFC 9112 allows neither, and
 * the Python client refuses both.
 */
function statusLineFault(response) {
  if (response.httpVersion !== '1.1' && response.httpVersion !== '1.0') {
    return `version HTTP/${response.httpVersion}`;
  }
  if (/[\x00-\x08\x0a-\x1f\x7f]/.test(response.statusMessage ?? '')) {
    return 'a control character in its status line';
  }
  return null;
}

/** The answer's Content-Encoding if it names a coding other than `identity`, else null. */
function contentCoding(response) {
  const value = response.headers['content-encoding'];
  if (value === undefined) return null;
  const codings = value.split(',').map((coding) => coding.replace(/^[ \t]+|[ \t]+$/g, '').toLowerCase());
  return codings.every((coding) => coding === '' || coding === 'identity') ? null : value;
}

/** Whether the answer's end can be told from a cut: a Content-Length, chunks, or no body. */
function hasLength(response) {
  if (response.statusCode === 204 || response.statusCode === 304) return true;
  if (response.headers['content-length'] !== undefined) return true;
  // Chunks alone: with another coding before them (gzip, chunked) the body is not the
  // JSON it reads as, and the Python client (http.client) reads no length at all.
  return /^\s*chunked\s*$/i.test(response.headers['transfer-encoding'] ?? '');
}
