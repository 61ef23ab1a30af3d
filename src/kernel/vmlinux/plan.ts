import { InternalError } from '../../codec/index.js';
import { BUILD_ID_NOTE_BYTES, DATA_ALIASES, type KernelLayout, type KernelSymbol } from '../layout.js';
import { VARIABLE_TYPES } from './ctypes.js';

/** An output section of the vmlinux: where it sits (offset from _text) and which segment holds it. */
export interface OutSection {
  name: '.head.text' | '.text' | '.rodata' | '.notes' | '.data' | '.bss';
  /** Offset from _text. */
  start: number;
  size: number;
  segment: 'text' | 'data';
  nobits: boolean;
}

/** A symbol of System.map as the vmlinux defines it. */
export type Placement =
  | { kind: 'variable'; sym: KernelSymbol; section: OutSection; offset: number; ctype: string; input: string }
  | { kind: 'function'; sym: KernelSymbol; section: OutSection; offset: number; input: string }
  | { kind: 'alias'; sym: KernelSymbol; target: string }
  | { kind: 'marker'; sym: KernelSymbol; section: OutSection | null; offset: number };

export interface VmlinuxPlan {
  layout: KernelLayout;
  sections: OutSection[];
  placements: Placement[];
}

/**
 * Where each symbol of a build goes in its vmlinux: variables (typed by
 * VARIABLE_TYPES) and function bodies each in an input section placed at
 * its System.map address, aliases as linker-script assignments, zero-size markers (_text,
 * _etext, __bss_start) as linker-script symbols inside the section they
 * mark. A variable VARIABLE_TYPES does not type is still placed, as bytes
 * (see untypedVariables).
 */
export function planVmlinux(layout: KernelLayout): VmlinuxPlan {
  const { head, text, rodata, data, bss } = layout.sections;
  const notesStart = offsetOf(layout, symbolNamed(layout, '__start_notes'));
  const sections: OutSection[] = [
    { name: '.head.text', start: head.offset, size: head.size, segment: 'text', nobits: false },
    { name: '.text', start: text.offset, size: text.size, segment: 'text', nobits: false },
    { name: '.rodata', start: rodata.offset, size: notesStart - rodata.offset, segment: 'text', nobits: false },
    { name: '.notes', start: notesStart, size: BUILD_ID_NOTE_BYTES, segment: 'text', nobits: false },
    { name: '.data', start: data.offset, size: data.size, segment: 'data', nobits: false },
    { name: '.bss', start: bss.offset, size: bss.size, segment: 'data', nobits: true },
  ];
  const within = (off: number): OutSection | undefined => sections.find((s) => off >= s.start && off < s.start + s.size);
  const endingAt = (off: number): OutSection | undefined => sections.find((s) => off === s.start + s.size);
  const aliases = new Map(DATA_ALIASES.map(([a, t]) => [a, t]));
  const placements: Placement[] = [];
  for (const sym of layout.symbols) {
    const off = offsetOf(layout, sym);
    const target = aliases.get(sym.name);
    if (target) {
      placements.push({ kind: 'alias', sym, target });
      continue;
    }
    if (sym.size === 0n) {
      const section = within(off) ?? endingAt(off) ?? null;
      placements.push({ kind: 'marker', sym, section, offset: section ? off - section.start : 0 });
      continue;
    }
    const section = within(off);
    if (!section || off + Number(sym.size) > section.start + section.size) {
      throw new InternalError(`vmlinux: ${sym.name} (offset 0x${off.toString(16)}, ${sym.size} bytes) does not fit one section`);
    }
    const isFunction = (sym.type === 'T' || sym.type === 't') && VARIABLE_TYPES[sym.name] === undefined;
    if (isFunction) {
      placements.push({ kind: 'function', sym, section, offset: off - section.start, input: `.lkcd${section.name}.${sym.name}` });
    } else {
      const input = `${section.nobits ? '.bss.lkcd' : `.lkcd${section.name}`}.${sym.name}`;
      const ctype = VARIABLE_TYPES[sym.name] ?? untypedVariableType(sym.size);
      placements.push({ kind: 'variable', sym, section, offset: off - section.start, ctype, input });
    }
  }
  return { layout, sections, placements };
}

/**
 * The type a variable gets when VARIABLE_TYPES does not name one: plain
 * bytes of its size, so the vmlinux still places it (and power-on never
 * fails for a missing annotation); `untypedVariables` lists these, and a
 * test keeps the list empty.
 */
function untypedVariableType(size: bigint): string {
  return ({ 1: 'u8', 2: 'u16', 4: 'u32', 8: 'u64' } as Record<string, string>)[size.toString()] ?? 'unsigned char[]';
}

/** Data symbols of the layout that VARIABLE_TYPES gives no C type. */
export function untypedVariables(layout: KernelLayout): string[] {
  const aliases = new Set(DATA_ALIASES.map(([a]) => a));
  return layout.symbols
    .filter((s) => s.size > 0n && !aliases.has(s.name) && !/^[Tt]$/.test(s.type) && VARIABLE_TYPES[s.name] === undefined)
    .map((s) => s.name);
}

function symbolNamed(layout: KernelLayout, name: string): KernelSymbol {
  const s = layout.symbols.find((x) => x.name === name);
  if (!s) throw new InternalError(`kernel layout has no ${name}`);
  return s;
}

function offsetOf(layout: KernelLayout, sym: KernelSymbol): number {
  return Number(sym.address - layout.textVaddr);
}
