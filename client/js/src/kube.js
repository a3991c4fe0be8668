// gate.kube: check k8s.request, then send the request to the Kubernetes API.
//
// The gate is asked with the exact method and path (query included) that are then sent,
// so it resolves them the way kube-apiserver will (CONTRACT 2.2). Inside a pod the API
// server, the service-account token (re-read on every call: projected tokens rotate) and
// the cluster CA come from the standard in-cluster locations; `cluster` points elsewhere
// (kubectl proxy, a test server). Impersonate-* headers are refused: they make the API
// server act as another user or group, which the gate never sees; so are the caller's
// credentials (Authorization, Cookie: the cluster's token is the one sent) and a Host
// header (another virtual host). The path is sent byte for byte as checked, to the
// configured server only.

import { readFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';

import { framingHeaderError, framingHeaderNames } from './fetch.js';
import { validTimeout } from './timeouts.js';

const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
// Impersonate-User, -Group, -Uid, -Extra-*: the request would act as someone else.
const IMPERSONATION_PREFIX = 'impersonate-';
// A caller's credential would replace the cluster's token: another identity, unseen too.
// Proxy-Authorization is refused with the other Proxy-* fields (framing).
const CREDENTIAL_HEADERS = new Set(['authorization', 'proxy-authorization', 'cookie']);

/** The API server of the pod this runs in. Throws outside a pod. */
export function inClusterConfig(env = process.env) {
  let host = env.KUBERNETES_SERVICE_HOST;
  if (!host) throw new Error('not in a Kubernetes pod: KUBERNETES_SERVICE_HOST is not set');
  if (host.includes(':')) host = `[${host}]`;
  return {
    server: `https://${host}:${env.KUBERNETES_SERVICE_PORT || '443'}`,
    tokenFile: `${SERVICE_ACCOUNT_DIR}/token`,
    caFile: `${SERVICE_ACCOUNT_DIR}/ca.crt`,
  };
}

async function bearerToken(cluster) {
  if (cluster.token) return cluster.token;
  if (!cluster.tokenFile) return null;
  return (await readFile(cluster.tokenFile, 'utf8')).trim();
}

// A JSON body PATCHed as application/json is refused by the API server (415).
const contentType = (method) => (method === 'PATCH' ? 'application/merge-patch+json' : 'application/json');

/**
 * Send `options.path` as it is to `server` (a URL). Not `new URL(path, server)`: the
 * WHATWG parser would resolve `..` and `%2e%2e`, turn `\\` into `/`, re-encode quotes and
 * braces, and read `//host/...` as another host, so that what was sent would differ from
 * the path the gate checked (and `//host` would take the token elsewhere).
 */
function send(server, options, payload) {
  return new Promise((resolve, reject) => {
    const module = server.protocol === 'https:' ? https : http;
    // An agent of its own with proxyEnv: null, so that Node's proxy from the environment
    // (NODE_USE_ENV_PROXY, Node >= 24) never sees the request or its token; and with
    // rejectUnauthorized, so that NODE_TLS_REJECT_UNAUTHORIZED=0 does not send the token
    // to a server the cluster CA does not vouch for (red-team review of 2026-12-07).
    const agent = new module.Agent({ proxyEnv: null, rejectUnauthorized: true });
    const target = {
      protocol: server.protocol,
      hostname: server.hostname.replace(/^\[|\]$/g, ''),
      port: server.port || undefined,
    };
    const request = module.request({ ...target, ...options, agent, rejectUnauthorized: true }, (response) => {
      const chunks = [];
      response.on('data', (chunk) => chunks.push(chunk));
      response.on('error', reject);
      response.on('end', () => {
        const body = Buffer.concat(chunks);
        resolve({
          status: response.statusCode,
          headers: response.headers,
          body,
          json: () => JSON.parse(body.toString('utf8')),
        });
      });
    });
    const late = () =>
      request.destroy(new Error(`Kubernetes API did not answer within ${options.timeout} ms`));
    // The socket's timeout is per idle spell: a server sending a byte now and then kept a
    // call going far past it (review of 2026-12-07). This one is for the whole call.
    const deadline = setTimeout(late, options.timeout);
    request.on('timeout', late);
    request.on('error', (error) => {
      clearTimeout(deadline);
      reject(error);
    });
    request.on('close', () => clearTimeout(deadline));
    request.end(payload);
  });
}

/**
 * Check, then send `method path` to the API server; rejects with DeniedError if not
 * allowed. `body` is a Buffer/string or any JSON value. Resolves to {status, headers,
 * body, json()} whatever the status (the API server's Status object says more than an
 * exception would). Impersonate-*, credential (Authorization, Cookie: give a token as
 * `cluster.token`), Host and message-framing headers (Content-Length,
 * Transfer-Encoding, Connection ...) are refused (TypeError); a `timeout` (ms,
 * default 30000) the Gate's own could not be is a RangeError, before any check.
 */
function isPlainObject(value) {
  if (value === null || typeof value !== 'object') return false;
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

export async function kubeChecked(gate, method, givenPath, options = {}) {
  const { body, headers = {}, cluster, timeout = 30_000, context, approval } = options;
  validTimeout('gate.kube timeout', timeout);
  // Made a string once: an object's toJSON (read for the check) and toString or valueOf
  // (read for the request line) could name two paths (red-team review).
  const path = String(givenPath);
  if (!path.startsWith('/')) throw new TypeError(`Kubernetes API path must start with '/': ${path}`);
  if (!isPlainObject(headers)) {
    // A Headers object or a list of pairs has no own keys to screen (and would be sent
    // as nothing or as junk): only {name: value} is taken.
    throw new TypeError('gate.kube takes headers as a plain object of {name: value}');
  }
  // Read once: what is screened is what is sent (a getter could answer differently).
  const taken = Object.fromEntries(Object.entries(headers));
  // From the caller, Content-Length: 0 with Connection: keep-alive turns the body into a
  // second request on the same connection (review of 2026-12-07): see fetch.js.
  const framing = framingHeaderNames(Object.keys(taken));
  if (framing.length > 0) throw framingHeaderError('gate.kube', framing);
  const impersonating = Object.keys(taken).filter((name) =>
    name.trim().toLowerCase().startsWith(IMPERSONATION_PREFIX),
  );
  if (impersonating.length > 0) {
    // The gate decides on the method and path, not on who the request acts as; an
    // impersonated identity could hold rights the agent's own account lacks.
    throw new TypeError(`gate.kube does not send ${impersonating.join(', ')}: the gate could not check it`);
  }
  const credentials = Object.keys(taken).filter((name) => CREDENTIAL_HEADERS.has(name.trim().toLowerCase()));
  if (credentials.length > 0) {
    // It would replace the cluster's token: the request would act as whoever it names,
    // and nothing the gate checks or records would show it.
    throw new TypeError(
      `gate.kube does not send ${credentials.join(', ')}: it would act as another identity than the ` +
        "cluster's, which the gate could not check; give a token as cluster.token",
    );
  }
  if (Object.keys(taken).some((name) => name.trim().toLowerCase() === 'host')) {
    // Host picks the virtual host: behind a shared front end, another cluster than the
    // one configured. It is always the server's own.
    throw new TypeError('gate.kube does not take a Host header: it is set from the cluster server');
  }
  for (const [name, value] of Object.entries(taken)) {
    // Node's own checks of a request's headers, after the screens above (their messages
    // say more): Node made them only after the gate had recorded an allow for a request
    // never sent (rt25 r2-clients-ops, 4).
    try {
      http.validateHeaderName(name);
      http.validateHeaderValue(name, value);
    } catch (error) {
      throw new TypeError(`gate.kube: ${error.message}`);
    }
  }
  const verb = String(method).toUpperCase();
  const target = cluster ?? inClusterConfig();
  const server = new URL(target.server);
  if ((server.protocol !== 'http:' && server.protocol !== 'https:') || !server.hostname) {
    throw new TypeError(`Kubernetes server must be an http(s) URL, not ${JSON.stringify(target.server)}`);
  }
  await gate.require({ action: 'k8s.request', k8s: { method: verb, path }, context, approval });
  let payload;
  if (body !== undefined && body !== null) {
    payload = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
  }
  const sent = { Accept: 'application/json' };
  if (payload !== undefined) sent['Content-Type'] = contentType(verb);
  const token = await bearerToken(target);
  if (token) sent.Authorization = `Bearer ${token}`;
  for (const [name, value] of Object.entries(taken)) {
    for (const key of Object.keys(sent)) if (key.toLowerCase() === name.toLowerCase()) delete sent[key];
    sent[name] = value;
  }
  const prefix = server.pathname.replace(/\/+$/, '');
  const ca = target.caFile ? await readFile(target.caFile) : undefined;
  return send(server, { method: verb, path: prefix + path, headers: sent, timeout, ca }, payload);
}
