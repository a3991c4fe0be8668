// gate.openFile: check file.read / file.write, then open exactly what was checked.
//
// The check carries the path as the caller wrote it, the working directory and the
// symlink-resolved realPath (the gate evaluates both; the stricter decision wins,
// CONTRACT 2.2). The file opened is the checked real path, and the open is verified: if a
// symlink was swapped in between the check and the open, the descriptor names another
// file, which is closed unused and reported as DeniedError. A truncating flag (w) truncates
// only after that verification.

import { constants } from 'node:fs';
import { lstat, open, readlink, realpath } from 'node:fs/promises';
import nodePath from 'node:path';

import { CHANGED, failedClosed } from './answers.js';
import { DeniedError } from './errors.js';

const { O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_EXCL, O_TRUNC, O_APPEND, O_SYNC } = constants;
const ACCESS_MODE = O_RDONLY | O_WRONLY | O_RDWR;

// Node's string flags as open(2) flags (see fs "File system flags").
const FLAGS = {
  r: O_RDONLY,
  rs: O_RDONLY | O_SYNC,
  sr: O_RDONLY | O_SYNC,
  'r+': O_RDWR,
  'rs+': O_RDWR | O_SYNC,
  'sr+': O_RDWR | O_SYNC,
  w: O_TRUNC | O_CREAT | O_WRONLY,
  wx: O_TRUNC | O_CREAT | O_WRONLY | O_EXCL,
  xw: O_TRUNC | O_CREAT | O_WRONLY | O_EXCL,
  'w+': O_TRUNC | O_CREAT | O_RDWR,
  'wx+': O_TRUNC | O_CREAT | O_RDWR | O_EXCL,
  'xw+': O_TRUNC | O_CREAT | O_RDWR | O_EXCL,
  a: O_APPEND | O_CREAT | O_WRONLY,
  ax: O_APPEND | O_CREAT | O_WRONLY | O_EXCL,
  xa: O_APPEND | O_CREAT | O_WRONLY | O_EXCL,
  as: O_APPEND | O_CREAT | O_WRONLY | O_SYNC,
  sa: O_APPEND | O_CREAT | O_WRONLY | O_SYNC,
  'a+': O_APPEND | O_CREAT | O_RDWR,
  'ax+': O_APPEND | O_CREAT | O_RDWR | O_EXCL,
  'xa+': O_APPEND | O_CREAT | O_RDWR | O_EXCL,
  'as+': O_APPEND | O_CREAT | O_RDWR | O_SYNC,
  'sa+': O_APPEND | O_CREAT | O_RDWR | O_SYNC,
};

/** open(2) flags for a Node flag string or number. */
export function numericFlags(flags) {
  if (typeof flags === 'number') return flags;
  if (Object.hasOwn(FLAGS, flags)) return FLAGS[flags];
  throw new TypeError(`unknown file open flags ${JSON.stringify(flags)}`);
}

/** The actions open flags need: reading is file.read, writing or creating is file.write. */
export function actionsForFlags(flags) {
  const access = flags & ACCESS_MODE;
  const actions = [];
  if (access === O_RDONLY || access === O_RDWR) actions.push('file.read');
  if (access === O_WRONLY || access === O_RDWR || flags & (O_CREAT | O_TRUNC | O_APPEND)) {
    actions.push('file.write');
  }
  return actions;
}

/**
 * realpath that, like Python's os.path.realpath, also resolves a path that does not exist
 * yet: the longest existing prefix is resolved and the rest appended.
 */
export async function resolveRealPath(absolute) {
  try {
    return await realpath(absolute);
  } catch (error) {
    if (error.code !== 'ENOENT' && error.code !== 'ENOTDIR') throw error;
    const parent = nodePath.dirname(absolute);
    if (parent === absolute) throw error;
    return nodePath.join(await resolveRealPath(parent), nodePath.basename(absolute));
  }
}

async function openedPath(handle) {
  try {
    return await readlink(`/proc/self/fd/${handle.fd}`);
  } catch {
    return null;
  }
}

/** Throw DeniedError unless the open file is the one the checked real path names. */
async function verifyOpened(handle, realPath) {
  let opened = await openedPath(handle);
  let same;
  if (opened !== null) {
    same = opened === realPath;
  } else {
    // No /proc (macOS, BSD): compare the open file with what the path names now.
    const [openStat, namedStat] = await Promise.all([handle.stat(), lstat(realPath)]);
    same = openStat.dev === namedStat.dev && openStat.ino === namedStat.ino;
    opened = 'another file';
  }
  if (!same) {
    const reason = `${realPath} changed between the check and the open (opened ${opened})`;
    throw new DeniedError(failedClosed(reason, CHANGED));
  }
}

/**
 * Check, then open the file; rejects with DeniedError if the gate does not allow it.
 * Resolves to a fs.promises FileHandle. `path` may be relative to `cwd` (default: the
 * process's working directory).
 */
export async function openChecked(gate, path, flags = 'r', { cwd, mode = 0o666, context, approval } = {}) {
  const written = String(path);
  const base = nodePath.resolve(cwd ?? process.cwd());
  // Not path.resolve: '..' after a symlink must be resolved the way the kernel does.
  const realPath = await resolveRealPath(nodePath.isAbsolute(written) ? written : `${base}/${written}`);
  const wanted = numericFlags(flags);
  const actions = actionsForFlags(wanted);
  if (actions.length === 0) throw new TypeError(`open flags ${flags} neither read nor write`);
  for (const action of actions) {
    await gate.require({ action, path: written, realPath, cwd: base, context, approval });
  }
  const handle = await open(realPath, wanted & ~O_TRUNC, mode);
  try {
    await verifyOpened(handle, realPath);
    if (wanted & O_TRUNC) await handle.truncate(0);
  } catch (error) {
    await handle.close();
    throw error;
  }
  return handle;
}
