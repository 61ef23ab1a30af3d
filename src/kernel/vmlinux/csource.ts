import { InternalError, type StructLayout } from '../../codec/index.js';
import { C_BASIC_SIZES, C_ENUMS, C_PRELUDE } from './ctypes.js';
import type { VmlinuxPlan } from './plan.js';

/** A C type split into its base and array dimensions: 'struct page *[4]' is { base: 'struct page *', dims: [4] }. */
interface CType { base: string; dims: number[] | 'sized-by-symbol' }

function parseCType(t: string): CType {
  const m = /^(.*?)((?:\[\d*\])*)$/.exec(t.trim());
  if (!m || m[1].trim() === '') throw new InternalError(`vmlinux: cannot read C type '${t}'`);
  const dims = [...m[2].matchAll(/\[(\d*)\]/g)].map((d) => d[1]);
  if (dims.length === 1 && dims[0] === '') return { base: m[1].trim(), dims: 'sized-by-symbol' };
  if (dims.some((d) => d === '')) throw new InternalError(`vmlinux: '${t}': only a one-dimensional T[] may be sized by its symbol`);
  return { base: m[1].trim(), dims: dims.map(Number) };
}

/** The struct a value of this base type embeds (not through a pointer), if any. */
function embeddedStruct(base: string): string | null {
  if (base.includes('*')) return null;
  const m = /^(?:const\s+|volatile\s+)*struct\s+(\w+)$/.exec(base);
  return m ? m[1] : null;
}

/**
 * Generates the C translation unit of a vmlinux: the prelude typedefs,
 * every structure of `structs` (packed, with explicit padding members, and
 * a _Static_assert of every offset and size), the kernel's enums, each
 * variable in its own input section, aliases, and function bodies of the
 * right size. gcc -g turns it into the DWARF; the linker script puts each
 * input section at its System.map address.
 */
export function vmlinuxCSource(plan: VmlinuxPlan, structs: readonly StructLayout[]): string {
  const byName = new Map(structs.map((s) => [s.name, s]));
  const sizeOf = (base: string): number => {
    if (base.includes('*')) return 8;
    const bare = base.replace(/\b(const|volatile)\s+/g, '').trim();
    const sname = embeddedStruct(bare);
    if (sname && byName.has(sname)) return byName.get(sname)!.size;
    const s = C_BASIC_SIZES[bare];
    if (s === undefined) throw new InternalError(`vmlinux: no size known for C type '${base}'`);
    return s;
  };
  const declarator = (t: string, name: string, symbolSize?: number): string => {
    const c = parseCType(t);
    let dims: number[];
    if (c.dims === 'sized-by-symbol') {
      if (symbolSize === undefined) throw new InternalError(`vmlinux: '${t} ${name}': T[] is for variables only`);
      const elem = sizeOf(c.base);
      if (symbolSize % elem !== 0) throw new InternalError(`vmlinux: ${name} is ${symbolSize} bytes, not a whole number of ${c.base} (${elem})`);
      dims = [symbolSize / elem];
    } else {
      dims = c.dims;
    }
    return `${c.base}${c.base.endsWith('*') ? '' : ' '}${name}${dims.map((d) => `[${d}]`).join('')}`;
  };

  const out: string[] = [
    `/* The debug info of the simulated kernel ${plan.layout.config.release}, generated from its struct codecs`,
    ' * and System.map (src/kernel/vmlinux). Compiled with gcc -g, linked at the System.map addresses. */',
    C_PRELUDE,
  ];
  const tags = new Set<string>();
  for (const s of structs) {
    tags.add(s.name);
    for (const f of s.fields) for (const m of f.ctype.matchAll(/\bstruct\s+(\w+)/g)) tags.add(m[1]);
  }
  for (const p of plan.placements) if ('ctype' in p) for (const m of p.ctype.matchAll(/\bstruct\s+(\w+)/g)) tags.add(m[1]);
  for (const t of [...tags].sort()) out.push(`struct ${t};`);
  out.push('');
  for (const e of C_ENUMS) {
    out.push(`enum ${e.name} {`, ...e.values.map(([n, v]) => `\t${n} = ${v},`), '};');
  }
  out.push('');

  // Structs in an order where each is defined before a struct embeds it.
  const done = new Set<string>();
  const visiting = new Set<string>();
  const emit = (s: StructLayout): void => {
    if (done.has(s.name)) return;
    if (visiting.has(s.name)) throw new InternalError(`vmlinux: struct ${s.name} embeds itself`);
    visiting.add(s.name);
    for (const f of s.fields) {
      const dep = embeddedStruct(parseCType(f.ctype).base);
      if (dep && !C_BASIC_SIZES[`struct ${dep}`]) {
        const d = byName.get(dep);
        if (!d) throw new InternalError(`vmlinux: struct ${s.name}.${f.name} embeds struct ${dep}, which is not in Kerntypes`);
        emit(d);
      }
    }
    const body: string[] = [];
    for (const f of s.fields) {
      if (f.bitfields) {
        const unit = parseCType(f.ctype).base;
        for (const b of f.bitfields) body.push(`\t${unit} ${b.name}:${b.bits};`);
      } else {
        body.push(`\t${declarator(f.ctype, f.name)};`);
      }
    }
    out.push(`struct ${s.name} {`, ...body, '} __attribute__((packed));');
    out.push(`_Static_assert(sizeof(struct ${s.name}) == ${s.size}, "sizeof(struct ${s.name})");`);
    for (const f of s.fields) {
      if (!f.bitfields) out.push(`_Static_assert(__builtin_offsetof(struct ${s.name}, ${f.name}) == ${f.offset}, "${s.name}.${f.name}");`);
    }
    out.push('');
    visiting.delete(s.name);
    done.add(s.name);
  };
  for (const s of structs) emit(s);

  for (const p of plan.placements) {
    if (p.kind === 'variable') {
      const size = Number(p.sym.size);
      out.push(`${declarator(p.ctype, p.sym.name, size)} __attribute__((section("${p.input}"), used));`);
      out.push(`_Static_assert(sizeof(${p.sym.name}) == ${size}, "sizeof(${p.sym.name})");`);
    } else if (p.kind === 'function') {
      const n = p.sym.name;
      out.push(`__asm__(".pushsection ${p.input},\\"ax\\",@progbits\\n\\t.globl ${n}\\n\\t.type ${n}, @function\\n${n}:\\n\\t.skip ${p.sym.size}, 0xcc\\n\\t.size ${n}, ${p.sym.size}\\n\\t.popsection");`);
    }
  }
  return out.join('\n') + '\n';
}
