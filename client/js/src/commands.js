// gate.run: check process.exec, then run exactly the program that was checked.
//
// An argument array is checked as `argv`. A bare program name is first resolved from PATH
// (the one in `env` when given) exactly as the child would look it up, relative and empty
// entries against the run's `cwd`, and both checked and run by that absolute path, so a
// look-alike `git` earlier in PATH is seen by the gate as the path it is (a rule for
// `git` covers only the trusted directories, CONTRACT section 1). A name found nowhere is
// refused: run as given, the child would search PATH again itself, unchecked. A string is
// checked as `commandLine` and run with /bin/sh -c; the gate splits and unwraps it like a
// shell.
//
// An `env` that adds or changes variables (LD_PRELOAD, GIT_SSH_COMMAND, PATH ...) is shown
// to the gate as the shell assignments it amounts to, so the gate decides them as it
// decides `LD_PRELOAD=x git status` (environment-override for a risky name): an argument
// array is then checked as the commandLine `K='v' /usr/bin/git status`, a string as
// `export K='v'; <the string>`. The same text as the Python client sends.
//
// The gate decides the files a command's redirections write and read (`> f`, `< f`, also
// inside `sh -c`) by their lexical paths, which it lists in its normalised request
// (request.writes, request.reads) when its answer carries that. The shell opens them
// through any symlink on the way (`gl -> .git` makes `> gl/config` write .git/config), so
// each one whose symlink-resolved path differs is then checked as file.write / file.read
// with `path` and `realPath`, as openFile checks a file, and resolved once more just
// before the run: a target that leads elsewhere by then is a DeniedError (`changed`). As
// the Python client does.

import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import nodePath from 'node:path';

import { BAD_ANSWER, CHANGED, NOT_FOUND, failedClosed } from './answers.js';
import { DeniedError } from './errors.js';
import { realPathIn } from './files.js';
import { validTimeout } from './timeouts.js';

// What would run something other than what was checked, or as someone it does not name.
const UNCHECKABLE = ['shell', 'argv0', 'detached', 'uid', 'gid'];
// What a shell can assign; any other name could not be shown to the gate as `NAME=value`.
const SHELL_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
// Python's shlex.quote leaves these bare; quoting alike keeps both clients' checks equal.
const SHELL_SAFE = /^[A-Za-z0-9_@%+=:,./-]+$/;

/**
 * `argv` as one shell command's words: the program quoted whenever it holds a `=`
 * (shellQuote leaves `X=/y` bare, which a shell, and the gate, read as an assignment and
 * not as the program `./X=/y` that runs). As the Python client's command_words.
 */
export function commandWords(argv) {
  const [program, ...rest] = argv;
  let word = shellQuote(program);
  if (program.includes('=') && word === program) word = `'${program}'`;
  return [word, ...rest.map(shellQuote)].join(' ');
}

/** One word for a POSIX shell, as Python's shlex.quote writes it: `it's` -> `'it'"'"'s'`. */
export function shellQuote(text) {
  if (text === '') return "''";
  if (SHELL_SAFE.test(text)) return text;
  return `'${text.replaceAll("'", `'"'"'`)}'`;
}

/**
 * The child's environment as spawn builds it from `env` (every enumerable key, inherited
 * ones too, undefined values left out, values made strings), read once so that what is
 * checked is what runs.
 */
function childEnvironment(env) {
  const copy = {};
  // for...in, like spawn: it also passes keys an env object inherits.
  for (const name in env) {
    const value = env[name];
    if (value !== undefined) copy[name] = `${value}`;
  }
  return copy;
}

/**
 * The variables `env` adds to or changes in process.env, sorted by name. Removed ones are
 * not reported: the gate has no way to express an unset. A changed name that is not a
 * shell identifier, which no assignment the gate could check can set, is a TypeError.
 */
export function environmentChanges(env) {
  const changed = Object.keys(env)
    .filter((name) => process.env[name] !== env[name])
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const invalid = changed.filter((name) => !SHELL_NAME.test(name));
  if (invalid.length > 0) {
    const names = invalid.map((name) => JSON.stringify(name)).join(', ');
    throw new TypeError(`gate.run cannot set ${names} in env: not a shell variable name`);
  }
  return changed.map((name) => [name, env[name]]);
}

/** `K1=v1 K2='v 2'`: the changes as shell assignments, each value quoted. */
function assignments(changes) {
  return changes.map(([name, value]) => `${name}=${shellQuote(value)}`).join(' ');
}

/**
 * `git` -> `/usr/bin/git` from the PATH the child will use; a path stays itself. The child
 * searches PATH after changing to `cwd` (default: the working directory), so relative and
 * empty entries are taken relative to it here too. null if no entry holds an executable
 * file of that name.
 */
export async function resolveProgram(name, env = process.env, cwd = process.cwd()) {
  if (name.includes('/')) return name;
  for (const directory of (env.PATH ?? '/usr/bin:/bin').split(':')) {
    const candidate = nodePath.resolve(cwd, directory, name); // an absolute entry replaces cwd
    try {
      await access(candidate, constants.X_OK);
      if ((await stat(candidate)).isFile()) return candidate;
    } catch {
      // not here; keep looking
    }
  }
  return null;
}

// The answer's lists of redirection targets, and the file action each one is.
const REDIRECTION_LISTS = [
  ['writes', 'file.write'],
  ['reads', 'file.read'],
];

/**
 * [action, path] for each file the allowed command's redirections open, as the gate's
 * answer lists them (request.writes, request.reads); none from an answer without
 * `request` (a gate that does not send it: docs/clients.md, Limits). Throws DeniedError
 * for lists it cannot read.
 */
export function redirectionTargets(decision) {
  const request = decision.raw?.request;
  if (request === undefined || request === null) return [];
  if (typeof request !== 'object' || Array.isArray(request)) {
    const reason = `tollgate's answer has request=${JSON.stringify(request)}, not an object`;
    throw new DeniedError(failedClosed(reason, BAD_ANSWER, decision.status));
  }
  const targets = [];
  for (const [field, action] of REDIRECTION_LISTS) {
    const paths = request[field] ?? [];
    if (!Array.isArray(paths) || !paths.every((path) => typeof path === 'string')) {
      const reason = `tollgate's answer has request.${field}=${JSON.stringify(paths)}, not a list of paths`;
      throw new DeniedError(failedClosed(reason, BAD_ANSWER, decision.status));
    }
    for (const path of paths) {
      if (!targets.some(([a, p]) => a === action && p === path)) targets.push([action, path]);
    }
  }
  return targets;
}

/**
 * Check each redirection target's real path where it differs from the lexical one the
 * gate decided; rejects with DeniedError if any is refused. Resolves to [path, realPath]
 * pairs for verifyRedirections. The run's `approval` is not sent: it is bound to the
 * command's request, not these.
 */
export async function checkRedirections(gate, decision, base, context) {
  const resolved = [];
  for (const [action, path] of redirectionTargets(decision)) {
    const realPath = await realPathIn(base, path);
    if (realPath !== path) await gate.require({ action, path, realPath, cwd: base, context });
    resolved.push([path, realPath]);
  }
  return resolved;
}

/**
 * Throw DeniedError if a target leads elsewhere than when it was checked (a symlink made
 * or moved meanwhile). Done last before the run, to keep that window short.
 */
export async function verifyRedirections(resolved, base) {
  for (const [path, realPath] of resolved) {
    const now = await realPathIn(base, path);
    if (now !== realPath) {
      const reason = `${path} changed between the check and the run (now leads to ${now})`;
      throw new DeniedError(failedClosed(reason, CHANGED));
    }
  }
}

function collect(child, { input, maxBuffer, encoding }) {
  return new Promise((resolve, reject) => {
    const out = { stdout: [], stderr: [] };
    let size = 0;
    for (const name of ['stdout', 'stderr']) {
      child[name].on('data', (chunk) => {
        size += chunk.length;
        if (size > maxBuffer) {
          child.kill();
          reject(new RangeError(`output is larger than maxBuffer (${maxBuffer} bytes)`));
          return;
        }
        out[name].push(chunk);
      });
    }
    child.on('error', reject);
    child.on('close', (exitCode, signal) => {
      const decode = (chunks) => {
        const buffer = Buffer.concat(chunks);
        return encoding === 'buffer' ? buffer : buffer.toString(encoding);
      };
      resolve({ exitCode, signal, stdout: decode(out.stdout), stderr: decode(out.stderr) });
    });
    child.stdin.on('error', () => {}); // a child that exits without reading its input
    child.stdin.end(input ?? undefined);
  });
}

/**
 * Check, then run the command; rejects with DeniedError if not allowed. Resolves to
 * {exitCode, signal, stdout, stderr} whatever the exit code, like Python's
 * subprocess.run without check. A `timeout` (ms) other than undefined or null follows the
 * Gate's rule (validTimeout): RangeError before any check otherwise.
 */
export async function runChecked(gate, command, options = {}) {
  const refused = UNCHECKABLE.filter((name) => name in options);
  if (refused.length > 0) {
    throw new TypeError(`gate.run does not take ${refused.join(', ')}: the gate could not check it`);
  }
  const {
    cwd,
    env,
    context,
    approval,
    input,
    timeout,
    killSignal,
    maxBuffer = 64 * 1024 * 1024,
    encoding = 'utf8',
  } = options;
  // No timeout (undefined or null) is no limit, as for spawn; any other follows the Gate's rule.
  if (timeout !== undefined && timeout !== null) validTimeout('gate.run timeout', timeout);
  const childEnv = env === undefined || env === null ? undefined : childEnvironment(env);
  const changes = childEnv === undefined ? [] : environmentChanges(childEnv);
  const base = nodePath.resolve(cwd ?? process.cwd());
  const spawnOptions = { cwd: base, env: childEnv ?? process.env, timeout, killSignal };
  if (typeof command === 'string') {
    // `export` gives the variables to the whole shell, as env does.
    const commandLine = changes.length > 0 ? `export ${assignments(changes)}; ${command}` : command;
    const decision = await gate.require({
      action: 'process.exec',
      commandLine,
      cwd: base,
      context,
      approval,
    });
    await verifyRedirections(await checkRedirections(gate, decision, base, context), base);
    return collect(spawn('/bin/sh', ['-c', command], spawnOptions), { input, maxBuffer, encoding });
  }
  const argv = Array.from(command, String);
  if (argv.length === 0) throw new TypeError('gate.run needs a program to run');
  const program = await resolveProgram(argv[0], childEnv ?? process.env, base);
  if (program === null) {
    // Refused rather than run as the bare name: the child would search PATH again on its
    // own, and whatever it found there (planted since, or missed here) would run unchecked.
    const reason = `${JSON.stringify(argv[0])} is not an executable file in any PATH directory`;
    throw new DeniedError(failedClosed(`${reason} (from ${base})`, NOT_FOUND));
  }
  argv[0] = program;
  let decision;
  if (changes.length > 0) {
    const commandLine = `${assignments(changes)} ${commandWords(argv)}`;
    decision = await gate.require({ action: 'process.exec', commandLine, cwd: base, context, approval });
  } else {
    decision = await gate.require({ action: 'process.exec', argv, cwd: base, context, approval });
  }
  // An argument array has redirections only in a script it hands a shell (sh -c '...').
  await verifyRedirections(await checkRedirections(gate, decision, base, context), base);
  return collect(spawn(argv[0], argv.slice(1), spawnOptions), { input, maxBuffer, encoding });
}
