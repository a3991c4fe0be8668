// gate.fetch: check network.request, then send it with the global fetch; every redirect
// is checked too before it is followed.
//
// Only http and https are fetched. Redirects are followed by this helper (fetch itself
// runs with redirect: 'manual'), each hop checked first, with the method and body
// changes of the Fetch standard and credentials dropped when the origin changes.
// The URL checked is the one fetch sends, as the WHATWG URL parser normalised it, without
// its fragment.
//
// The request must go to the checked host and nowhere else: a `dispatcher` in `init`
// (undici's hook, which can route through a proxy) is refused, and so is a Host header
// naming another host. Recent Node (24, some 22.x) sends global fetch through
// HTTP_PROXY / HTTPS_PROXY when NODE_USE_ENV_PROXY=1 or --use-env-proxy is given; one
// call cannot opt out without undici's Agent (a dependency), so while both are set this
// helper refuses to fetch at all, whatever the Node version. Header fields that frame the
// message or manage the connection are refused as in Python's fetch and in gate.kube, and
// so are those asking the server to run another method (X-HTTP-Method-Override ...).

import http from 'node:http';

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
// The Fetch standard's bad ports, which fetch never connects to: undici refused them
// after the gate had checked and recorded an allow (rt26). Its list in Node 20; an older
// undici lacks 4190 and 6679, refused here on any Node all the same.
const BAD_PORTS = new Set([
  1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95, 101, 102,
  103, 104, 109, 110, 111, 113, 115, 117, 119, 123, 135, 137, 139, 143, 161, 179, 389, 427, 465,
  512, 513, 514, 515, 526, 530, 531, 532, 540, 548, 554, 556, 563, 587, 601, 636, 989, 990, 993,
  995, 1719, 1720, 1723, 2049, 3659, 4045, 4190, 5060, 5061, 6000, 6566, 6665, 6666, 6667, 6668,
  6669, 6679, 6697, 10080,
]);
const CROSS_ORIGIN_DROPPED = ['authorization', 'cookie', 'proxy-authorization'];
const PROXY_VARIABLES = ['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy'];
// Header fields that frame the message or manage the connection: the HTTP library sets
// them. From the caller, Content-Length: 0 (or Transfer-Encoding: chunked and a body
// starting with the last chunk) turns the body into a second request on the same
// connection, which the server serves and the gate never saw (review of 2026-12-07).
// Proxy-* fields are refused with them. The same names as Python's checked_headers.
const FRAMING_HEADERS = new Set([
  'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'te', 'trailer', 'expect',
]);

// Header fields that ask a server to run another method than the request line's. Refused
// whatever their value, as in Python's fetch: the gate checks (and an approval binds) the
// method sent, a value equal to it changes nothing, and a redirect that turns the request
// into a GET would still carry the old method in it (rt26).
const METHOD_OVERRIDE_HEADERS = new Set(['x-http-method-override', 'x-http-method', 'x-method-override']);

/** The error for a method-override header, or null if `names` holds none. */
function methodOverrideError(helper, names) {
  const found = names.filter((name) => METHOD_OVERRIDE_HEADERS.has(name.trim().toLowerCase()));
  if (found.length === 0) return null;
  return new TypeError(
    `${helper} does not take a ${found.join(', ')} header: a server honouring it runs that ` +
      'method, not the one the gate checked; send the method itself',
  );
}

/** The names among `names` that frame the message (any case, Proxy-* included). */
export function framingHeaderNames(names) {
  return names.filter((name) => {
    const lowered = name.trim().toLowerCase();
    return FRAMING_HEADERS.has(lowered) || lowered.startsWith('proxy-');
  });
}

/** The error for framing headers a helper was given. */
export function framingHeaderError(helper, names) {
  return new TypeError(
    `${helper} does not take a ${names.join(', ')} header: the HTTP library sets it, ` +
      'and from the caller it could frame a second request the gate never checked',
  );
}

/** Why global fetch would go through a proxy from the environment, or null. */
export function envProxyProblem(env = process.env, execArgv = process.execArgv) {
  const enabled =
    Boolean(env.NODE_USE_ENV_PROXY) ||
    execArgv.includes('--use-env-proxy') ||
    /(^|\s)--use-env-proxy(\s|$)/.test(env.NODE_OPTIONS ?? '');
  const proxies = PROXY_VARIABLES.filter((name) => env[name]);
  if (!enabled || proxies.length === 0) return null;
  return (
    `gate.fetch refuses to fetch while fetch uses proxies from the environment ` +
    `(NODE_USE_ENV_PROXY or --use-env-proxy, and ${proxies.join(', ')}): the request ` +
    'would go to a proxy the gate never checked'
  );
}

/**
 * The Location header as fetch itself reads it (undici's responseLocationURL): a header
 * value holds one character per byte, so one with a byte outside printable ASCII is read
 * again as UTF-8, as browsers do. A raw UTF-8 '/ré' is then '/r%C3%A9', not '/r%C3%83%C2%A9'.
 */
function locationAsFetchReadsIt(location) {
  return /[^\x20-\x7e]/.test(location) ? Buffer.from(location, 'latin1').toString('utf8') : location;
}

/**
 * The slashes and authority of `text` as written, or null if it has no authority: the
 * slashes after the scheme (or a relative URL's leading two) and what follows, up to the
 * first '/', '?' or '#'. It runs past a backslash, as RFC 3986 and Python's urlsplit read
 * it, where the WHATWG parser ends the host there; tabs and newlines are dropped first, as
 * that parser does.
 */
function writtenBeforePath(text, base) {
  const cleaned = text.replace(/^[\x00-\x20]+|[\x00-\x20]+$/g, '').replace(/[\t\n\r]/g, '');
  const scheme = /^[A-Za-z][A-Za-z0-9+.-]*:/.exec(cleaned)?.[0] ?? '';
  const rest = cleaned.slice(scheme.length);
  // 'http:x' is relative to an http base, and names the host x without one.
  const schemeStartsAuthority = scheme !== '' && scheme.toLowerCase() !== base?.protocol;
  if (!schemeStartsAuthority && !/^[/\\]{2}/.test(rest)) return null;
  return /^[/\\]*[^/?#]*/.exec(rest)[0];
}

function webUrl(value, base) {
  const text = String(value);
  const url = new URL(text, base);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new TypeError(`gate.fetch fetches http and https URLs only, not ${url.protocol}`);
  }
  // fetch refuses it only when asked to send it, after the gate recorded an allow, and
  // quotes the URL, password and all (rt25 r2-clients-ops, 3). Python refuses it too, and
  // any other '@' before the path: the WHATWG parser drops an empty user name
  // ('http://@host/') and ends the host at a backslash ('http://host\\@evil/' is
  // host/@evil/), where Python and RFC 3986 read a user name and the host evil (rt26).
  const beforePath = writtenBeforePath(text, base);
  if (url.username !== '' || url.password !== '' || beforePath?.includes('@')) {
    throw new TypeError(
      'gate.fetch refuses a URL with a user name or password (user:password@) or any other ' +
        "'@' before its path (http://@host/, http://host\\@evil/): fetch cannot send the one, " +
        'and parsers disagree on the host of the other; send credentials in an Authorization header',
    );
  }
  // The WHATWG parser reads a backslash as a '/' ('http://host\\evil/' is host/evil/,
  // 'http:\\\\host/' is host/) where Python reads it as part of the host or no host at
  // all (and the gate refuses it): the clients disagreed on the same URL (rt26).
  if (beforePath?.includes('\\')) {
    throw new TypeError(
      'gate.fetch refuses a URL with a backslash before its path (http://host\\evil/, ' +
        "http:\\\\host/): parsers disagree on its host; write '/'",
    );
  }
  if (BAD_PORTS.has(Number(url.port))) {
    throw new TypeError(
      `gate.fetch refuses port ${url.port}: fetch never connects to it (a bad port of the ` +
        'Fetch standard, kept for other protocols than HTTP)',
    );
  }
  // The fragment is never sent, and the gate refuses a '#' left in what it reads as the
  // path ('/a#x#y'), which Python's fetch cuts at the first '#' (rt25 clients review, 4).
  url.hash = '';
  return url;
}

/**
 * Check, then fetch; rejects with DeniedError if the gate does not allow the request or
 * any redirect it leads to. Takes fetch's `init` plus `context`, `approval` and
 * `maxRedirects` (default 20); resolves to fetch's Response.
 */
export async function fetchChecked(gate, url, init = {}) {
  const { context, approval, maxRedirects = 20, redirect = 'follow', ...rest } = init;
  if ('dispatcher' in rest) {
    throw new TypeError('gate.fetch does not take a dispatcher: the gate could not check where it connects');
  }
  const proxied = envProxyProblem();
  if (proxied !== null) throw new TypeError(proxied);
  let target = webUrl(url);
  // A string once: an object's toJSON (read for the check) and toString (read by fetch)
  // could name two methods, as for gate.kube's path.
  let method = String(rest.method ?? 'GET').toUpperCase();
  let { body } = rest;
  // Read once: the names screened are the ones sent (a getter could answer differently).
  const headers = new Headers(rest.headers);
  // Undici left to itself refused some of these only after the check (an allow recorded
  // for a request never sent), and sent others (Connection, TE, Trailer, Proxy-*): rt25.
  const framing = framingHeaderNames([...headers.keys()]);
  if (framing.length > 0) throw framingHeaderError('gate.fetch', framing);
  const override = methodOverrideError('gate.fetch', [...headers.keys()]);
  if (override !== null) throw override;
  const host = headers.get('host');
  if (host !== null && host.trim().toLowerCase() !== target.host) {
    throw new TypeError(`gate.fetch: Host header ${host} names another host than the URL (${target.host})`);
  }
  headers.delete('host'); // fetch sets it from the URL, on every hop
  for (const [name, value] of headers) {
    // Headers lets control characters such as \x01 and \x7f through, which undici then
    // refuses: after the gate had recorded an allow (rt25 review of the last fixes).
    try {
      http.validateHeaderValue(name, value);
    } catch (error) {
      throw new TypeError(`gate.fetch: ${error.message}`);
    }
  }
  for (let hop = 0; ; hop += 1) {
    await gate.require({
      action: 'network.request',
      url: target.href,
      method,
      context,
      approval: hop === 0 ? approval : undefined,
    });
    const response = await fetch(target, { ...rest, method, body, headers, redirect: 'manual' });
    const header = response.headers.get('location');
    const location = header === null ? null : locationAsFetchReadsIt(header);
    if (!REDIRECT_STATUSES.has(response.status) || location === null || redirect === 'manual') {
      return response;
    }
    await response.body?.cancel();
    if (redirect === 'error') throw new TypeError(`redirect to ${location} refused (redirect: 'error')`);
    if (hop >= maxRedirects) throw new TypeError(`more than ${maxRedirects} redirects`);
    const next = webUrl(location, target);
    if (
      (response.status === 303 && method !== 'HEAD') ||
      ((response.status === 301 || response.status === 302) && method === 'POST')
    ) {
      method = 'GET';
      body = undefined;
      for (const name of ['content-type', 'content-length', 'content-encoding', 'content-language']) {
        headers.delete(name);
      }
    }
    if (next.origin !== target.origin) {
      for (const name of CROSS_ORIGIN_DROPPED) headers.delete(name);
    }
    target = next;
  }
}
