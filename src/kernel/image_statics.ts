import { InternalError } from '../codec/index.js';
import { INITIAL_JIFFIES } from './constants.js';
import { BUILD_ID_NOTE_BYTES, NOTES_AREA, TASK_STATE_AREA, TASK_STATE_NAMES, type KernelLayout } from './layout.js';
import { BUILD_ID_SIZE, encodeBuildIdNote } from './build_id.js';

/**
 * What the C initialisers of a few kernel variables put in the image, so
 * they hold their values from the first instruction: `jiffies =
 * INITIAL_JIFFIES`, `LIST_HEAD(modules)`, `task_state_array[]` and its
 * strings, and the build-ID note (its descriptor zero until the build
 * fills it in, see setImageBuildId).
 */
export function writeImageStatics(loadable: Uint8Array, layout: KernelLayout): void {
  const buf = Buffer.from(loadable.buffer, loadable.byteOffset, loadable.byteLength);
  const sym = (name: string): { off: number; addr: bigint } => {
    const s = layout.symbols.find((x) => x.name === name);
    if (!s) throw new InternalError(`kernel layout has no ${name}`);
    return { off: Number(s.address - layout.textVaddr), addr: s.address };
  };
  buf.writeBigUInt64LE(INITIAL_JIFFIES, sym('jiffies').off);
  const modules = sym('modules');
  buf.writeBigUInt64LE(modules.addr, modules.off);
  buf.writeBigUInt64LE(modules.addr, modules.off + 8);

  const states = sym('task_state_array');
  let str = states.off + 8 * TASK_STATE_NAMES.length;
  buf.fill(0, states.off, states.off + TASK_STATE_AREA);
  TASK_STATE_NAMES.forEach((name, i) => {
    buf.writeBigUInt64LE(states.addr + BigInt(str - states.off), states.off + 8 * i);
    buf.write(`${name}\0`, str, 'latin1');
    str += name.length + 1;
  });
  if (str > states.off + TASK_STATE_AREA) throw new InternalError('task_state_array strings overflow their area');

  const notes = sym('__start_notes').off;
  buf.fill(0, notes, notes + NOTES_AREA);
  buf.set(encodeBuildIdNote(new Uint8Array(BUILD_ID_SIZE)), notes);
}

/** Byte offset, from _text, of the build-ID descriptor in the image. */
export function buildIdOffset(layout: KernelLayout): number {
  const s = layout.symbols.find((x) => x.name === '__start_notes');
  if (!s) throw new InternalError('kernel layout has no __start_notes');
  return Number(s.address - layout.textVaddr) + BUILD_ID_NOTE_BYTES - BUILD_ID_SIZE;
}
