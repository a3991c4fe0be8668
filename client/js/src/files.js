// gate.openFile: check file.read / file.write, then open exactly what was checked.
//
// The check carries the path as the caller wrote it, the working directory and the
// symlink-resolved realPath (the gate evaluates both; the stricter decision wins,
// CONTRACT 2.2). The file opened is the checked real path, never through a symlink as its
// last component (O_NOFOLLOW), so a link swapped in after the check cannot make a
// creating flag create a file elsewhere. Node has no openat(): where /proc exists the
// file is opened as /proc/self/fd/<dir>/<name> relative to the checked parent directory,
// itself opened with O_NOFOLLOW and verified, so a directory swapped for a symlink cannot
// redirect the open either; without /proc that race remains (docs/clients.md, Limits).
// The open is then verified: if the descriptor names another file, it is closed unused
// and reported as DeniedError. A truncating flag (w) truncates only after that
// verification.

import { constants } from 'node:fs';
import { lstat, open, readlink, realpath } from 'node:fs/promises';
import nodePath from 'node:path';

import { CHANGED, failedClosed } from './answers.js';
import { DeniedError } from './errors.js';

const {
  O_RDONLY,
  O_WRONLY,
  O_RDWR,
  O_CREAT,
  O_EXCL,
  O_TRUNC,
  O_APPEND,
  O_SYNC,
  O_DIRECTORY,
  O_NOFOLLOW,
} = constants;
const ACCESS_MODE = O_RDONLY | O_WRONLY | O_RDWR;
// Symlinks followed in one lookup before giving up, as Linux does (MAXSYMLINKS).
const MAX_SYMLINKS = 40;

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
 * (yet): symlinks are followed as far as the path exists, a dangling one to where it
 * points (a create through it would land there), and the rest is appended.
 */
export async function resolveRealPath(absolute) {
  try {
    return await realpath(absolute);
  } catch (error) {
    if (error.code !== 'ENOENT' && error.code !== 'ENOTDIR') throw error;
  }
  // Component by component, as the kernel looks a path up: a link's target takes the
  // link's place, and '..' leaves the directory resolved so far (symlink-free).
  let resolved = '/';
  let rest = absolute.split('/');
  let links = 0;
  while (rest.length > 0) {
    const name = rest.shift();
    if (name === '' || name === '.') continue;
    if (name === '..') {
      resolved = nodePath.dirname(resolved);
      continue;
    }
    const next = nodePath.join(resolved, name);
    const target = await linkTarget(next);
    if (target === null) {
      resolved = next;
      continue;
    }
    links += 1;
    if (links > MAX_SYMLINKS) {
      throw Object.assign(new Error(`too many levels of symbolic links in ${absolute}`), { code: 'ELOOP' });
    }
    if (target.startsWith('/')) resolved = '/';
    rest = [...target.split('/'), ...rest];
  }
  return resolved;
}

/**
 * Where `written` (relative to the absolute `base`) leads once symlinks are followed: what
 * an open or a create by that path reaches (resolveRealPath). Not path.resolve: '..' after
 * a symlink must be resolved the way the kernel does.
 */
export function realPathIn(base, written) {
  return resolveRealPath(nodePath.isAbsolute(written) ? written : `${base}/${written}`);
}

/** What the symlink at `path` points to; null if it is no symlink or does not exist. */
async function linkTarget(path) {
  try {
    return (await lstat(path)).isSymbolicLink() ? await readlink(path) : null;
  } catch (error) {
    if (error.code === 'ENOENT' || error.code === 'ENOTDIR') return null;
    throw error;
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
  if (!same) throw changed(realPath, `opened ${opened}`);
}

function changed(realPath, what) {
  const reason = `${realPath} changed between the check and the open (${what})`;
  return new DeniedError(failedClosed(reason, CHANGED));
}

/**
 * open() refusing a symlink as the last component, as DeniedError: the checked real path
 * has none, so one found there now was swapped in after the check. `checked` is the path
 * `path` stands for.
 */
async function openNoFollow(checked, path, flags, mode) {
  try {
    return await open(path, flags | O_NOFOLLOW, mode);
  } catch (error) {
    // ELOOP (EMLINK on FreeBSD) for a link; ENOTDIR where a directory was wanted.
    if (['ELOOP', 'EMLINK', 'ENOTDIR'].includes(error.code) && (await linkTarget(checked)) !== null) {
      throw changed(checked, 'it is now a symlink');
    }
    throw error;
  }
}

/** Open exactly the checked real path (see the top of this file). */
async function openExactly(realPath, flags, mode) {
  const parent = nodePath.dirname(realPath);
  let directory;
  try {
    directory = await openNoFollow(parent, parent, O_RDONLY | O_DIRECTORY);
  } catch (error) {
    // A directory we may write in but not list (no O_PATH in Node): open by path.
    if (error.code !== 'EACCES') throw error;
    return openNoFollow(realPath, realPath, flags, mode);
  }
  try {
    if ((await openedPath(directory)) === null) return await openNoFollow(realPath, realPath, flags, mode);
    await verifyOpened(directory, parent);
    const name = nodePath.basename(realPath) || '.';
    return await openNoFollow(realPath, `/proc/self/fd/${directory.fd}/${name}`, flags, mode);
  } finally {
    await directory.close();
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
  const realPath = await realPathIn(base, written);
  const wanted = numericFlags(flags);
  const actions = actionsForFlags(wanted);
  if (actions.length === 0) throw new TypeError(`open flags ${flags} neither read nor write`);
  for (const action of actions) {
    await gate.require({ action, path: written, realPath, cwd: base, context, approval });
  }
  const handle = await openExactly(realPath, wanted & ~O_TRUNC, mode);
  try {
    await verifyOpened(handle, realPath);
    if (wanted & O_TRUNC) await handle.truncate(0);
  } catch (error) {
    await handle.close();
    throw error;
  }
  return handle;
}
