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

import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import nodePath from 'node:path';

import { NOT_FOUND, failedClosed } from './answers.js';
import { DeniedError } from './errors.js';

const UNCHECKABLE = ['shell', 'argv0', 'detached'];

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
 * subprocess.run without check.
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
  const base = nodePath.resolve(cwd ?? process.cwd());
  const spawnOptions = { cwd: base, env: env ?? process.env, timeout, killSignal };
  if (typeof command === 'string') {
    await gate.require({ action: 'process.exec', commandLine: command, cwd: base, context, approval });
    return collect(spawn('/bin/sh', ['-c', command], spawnOptions), { input, maxBuffer, encoding });
  }
  const argv = Array.from(command, String);
  if (argv.length === 0) throw new TypeError('gate.run needs a program to run');
  const program = await resolveProgram(argv[0], env ?? process.env, base);
  if (program === null) {
    // Refused rather than run as the bare name: the child would search PATH again on its
    // own, and whatever it found there (planted since, or missed here) would run unchecked.
    const reason = `${JSON.stringify(argv[0])} is not an executable file in any PATH directory`;
    throw new DeniedError(failedClosed(`${reason} (from ${base})`, NOT_FOUND));
  }
  argv[0] = program;
  await gate.require({ action: 'process.exec', argv, cwd: base, context, approval });
  return collect(spawn(argv[0], argv.slice(1), spawnOptions), { input, maxBuffer, encoding });
}
