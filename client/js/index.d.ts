// Types of tollgate-client, Tollgate's JavaScript client (CONTRACT section 5).

import type { FileHandle } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';

export declare const DEFAULT_URL: 'http://127.0.0.1:9800';

export type Action =
  'file.read' | 'file.write' | 'file.delete' | 'process.exec' | 'network.request' | 'k8s.request';

/** Kubernetes request: attributes, or the HTTP method and path about to be sent. */
export type K8sRequest =
  | {
      verb: string;
      group?: string;
      version?: string;
      resource?: string;
      subresource?: string;
      namespace?: string;
      name?: string;
    }
  | { method: string; path: string };

interface CommonFields {
  /** Recorded with the decision, never matched (at most 16 KiB). */
  context?: Record<string, unknown>;
  /** An approved approval id to redeem. */
  approval?: string;
  /** Evaluate and record as a preflight, spending no rate limit or approval. */
  dryRun?: boolean;
}

export interface FileCheck extends CommonFields {
  action: 'file.read' | 'file.write' | 'file.delete';
  path: string;
  realPath?: string;
  cwd?: string;
}

export type ProcessCheck = CommonFields & {
  action: 'process.exec';
  cwd?: string;
} & ({ argv: string[]; commandLine?: never } | { commandLine: string; argv?: never });

export interface NetworkCheck extends CommonFields {
  action: 'network.request';
  url?: string;
  host?: string;
  port?: number;
  scheme?: string;
  method?: string;
}

export interface K8sCheck extends CommonFields {
  action: 'k8s.request';
  k8s: K8sRequest;
}

/** The body of POST /v1/check (CONTRACT 2.1); fields are camelCase. */
export type CheckRequest = FileCheck | ProcessCheck | NetworkCheck | K8sCheck;

export type ApprovalStatus = 'pending' | 'approved' | 'denied' | 'expired' | 'redeemed';

export interface Approval {
  readonly id: string;
  /** `unknown` when the client could not learn the state (`reason` says why). */
  readonly status: ApprovalStatus | 'unknown';
  readonly expiresAt: string | null;
  readonly reason: string;
  readonly raw: Record<string, unknown>;
}

/**
 * Why the client failed closed: `unreachable`, `timeout`, `bad_answer`, `changed`,
 * `not_found` (gate.run: no such program in PATH; `status` is null), or the gate's own
 * error code (`invalid_request`, `unavailable`, ...). The gate's codes include
 * `not_found` too, with `status` 404 (a gate URL with a path the gate does not serve):
 * test `status === null` to tell run's apart.
 */
export type ErrorKind =
  | 'unreachable'
  | 'timeout'
  | 'bad_answer'
  | 'changed'
  | 'not_found'
  | 'invalid_request'
  | 'too_large'
  | 'unavailable'
  | (string & {});

export interface Decision {
  /** The only bit to act on: true only for a 200 answer with `"allowed": true`. */
  readonly allowed: boolean;
  /** `allow`, `deny` or `require_approval` (audit mode: what enforce mode would do). */
  readonly decision: 'allow' | 'deny' | 'require_approval' | (string & {});
  readonly reason: string;
  readonly rule: string | null;
  readonly decisionId: string | null;
  readonly approval: Approval | null;
  readonly risk: string | null;
  readonly mode: string | null;
  /** null for a real decision, else why the client failed closed. */
  readonly error: ErrorKind | null;
  /** The HTTP status of the answer, null when there was none. */
  readonly status: number | null;
  readonly raw: Record<string, unknown>;
}

export declare class DeniedError extends Error {
  constructor(decision: Decision);
  readonly name: 'DeniedError';
  readonly decision: Decision;
  readonly reason: string;
  readonly approval: Approval | null;
}

export interface GateOptions {
  /**
   * Default: $TOLLGATE_URL, then http://127.0.0.1:9800. Must name the gate's loopback
   * address (127.0.0.1; `localhost`, which is 127.0.0.1 and never looked up; [::1]) unless
   * `allowRemote` is true: TypeError otherwise.
   */
  url?: string;
  /** Accept a gate URL at any other address; default false. */
  allowRemote?: boolean;
  /**
   * Milliseconds each check may take; default 2000. A finite number above 0 and at most
   * 2^31 - 1: RangeError otherwise.
   */
  timeout?: number;
  /**
   * Milliseconds `require` and the guarded helpers wait for a human's approval; default 0.
   * A finite number, 0 or above and at most 2^31 - 1: RangeError otherwise.
   */
  approvalTimeout?: number;
}

interface GuardOptions {
  context?: Record<string, unknown>;
  approval?: string;
}

export interface OpenFileOptions extends GuardOptions {
  /** Directory a relative path is resolved against; default process.cwd(). */
  cwd?: string;
  /** Permission bits of a created file; default 0o666 (before umask). */
  mode?: number;
}

export interface RunOptions extends GuardOptions {
  cwd?: string;
  /**
   * The child's environment. Variables it adds to or changes in process.env are checked
   * as shell assignments (a commandLine); a changed name that is not a shell identifier
   * makes run reject with a TypeError before any check.
   */
  env?: NodeJS.ProcessEnv;
  input?: string | Buffer;
  /**
   * Milliseconds before the child is killed; undefined or null: no limit. Otherwise a
   * finite number above 0 and at most 2^31 - 1: run rejects with RangeError before any
   * check.
   */
  timeout?: number | null;
  killSignal?: NodeJS.Signals | number;
  /** Bytes of stdout + stderr kept at most; default 64 MiB. */
  maxBuffer?: number;
  /** Default 'utf8'; 'buffer' for Buffers. */
  encoding?: BufferEncoding | 'buffer';
}

export interface RunResult<Output = string> {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: Output;
  stderr: Output;
}

export interface CheckedFetchInit extends RequestInit, GuardOptions {
  /** Redirects followed (each one checked) at most; default 20. */
  maxRedirects?: number;
}

export interface KubeCluster {
  /** API server URL, e.g. https://10.0.0.1:443 or http://127.0.0.1:8001 (kubectl proxy). */
  server: string;
  token?: string;
  tokenFile?: string;
  caFile?: string;
}

export interface KubeOptions extends GuardOptions {
  /** A Buffer or string is sent as is; any other value as JSON. */
  body?: unknown;
  /**
   * `Impersonate-*` headers are refused (the gate could not check who the request acts as),
   * and so are `Authorization` and `Cookie` (give a token as `cluster.token`) and `Host`
   * (another virtual host than the cluster server's).
   */
  headers?: Record<string, string>;
  /** Default: the in-cluster API server and service-account token. */
  cluster?: KubeCluster;
  /**
   * Milliseconds; default 30000. A finite number above 0 and at most 2^31 - 1: kube
   * rejects with RangeError before any check otherwise.
   */
  timeout?: number;
}

export interface KubeResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  json(): unknown;
}

export declare class Gate {
  constructor(options?: GateOptions);
  readonly url: string;
  readonly timeout: number;
  readonly approvalTimeout: number;
  /** TCP connections opened so far; stays at 1 for sequential checks (keep-alive). */
  readonly connectionsOpened: number;
  /** Ask whether an action may happen. One round trip; never rejects (fails closed). */
  check(request: CheckRequest): Promise<Decision>;
  /** Like check, but rejects with DeniedError unless the action is allowed. */
  require(request: CheckRequest): Promise<Decision>;
  /**
   * Long-poll an approval until it leaves `pending` or `timeoutMs` (default 300000) passes.
   * Rejects with RangeError for a `timeoutMs` that is not a finite number >= 0.
   */
  waitForApproval(approvalId: string, timeoutMs?: number): Promise<Approval>;
  /** Check file.read and/or file.write (by `flags`, default 'r'), then open the checked real path. */
  openFile(path: string, flags?: string | number, options?: OpenFileOptions): Promise<FileHandle>;
  /**
   * Check process.exec (argv array, or a shell command line string), then the real path of
   * each file its redirections write or read (file.write / file.read, where a symlink leads
   * elsewhere), then run it.
   */
  run(
    command: string | readonly string[],
    options?: RunOptions & { encoding?: BufferEncoding },
  ): Promise<RunResult<string>>;
  run(
    command: string | readonly string[],
    options: RunOptions & { encoding: 'buffer' },
  ): Promise<RunResult<Buffer>>;
  /**
   * Check network.request (and every redirect), then fetch. The URL checked and sent is
   * the WHATWG parser's href without its fragment (`/a/../b` is `/b`); the Python client
   * checks the URL as written (docs/clients.md). Rejects with TypeError, before
   * any check, for a `dispatcher`, a Host header for another host, a header that frames
   * the message (Content-Length, Transfer-Encoding, Connection, Keep-Alive, Upgrade, TE,
   * Trailer, Expect, Proxy-*) or asks the server for another method (X-HTTP-Method-Override,
   * X-HTTP-Method, X-Method-Override), in any letter case, or a URL or redirect with a
   * user name or password or any other '@' before its path (`http://@host/`,
   * `http://host\@evil/`), a backslash before its path (`http://host\evil/`) or to a
   * port fetch never connects to (the Fetch standard's bad ports: 22, 25, 6000 ...).
   */
  fetch(url: string | URL, init?: CheckedFetchInit): Promise<Response>;
  /** Check k8s.request with this method and path, then send it to the API server. */
  kube(method: string, path: string, options?: KubeOptions): Promise<KubeResponse>;
  /** Close the pooled connections. */
  close(): void;
}

/** `new Gate({url}).waitForApproval(id, timeoutMs)` for a one-off wait. */
export declare function waitForApproval(
  approvalId: string,
  timeoutMs?: number,
  options?: { url?: string; allowRemote?: boolean },
): Promise<Approval>;

/** The in-cluster API server, token file and CA file. Throws outside a pod. */
export declare function inClusterConfig(env?: NodeJS.ProcessEnv): KubeCluster;
