import { InternalError, viewOf } from '../codec/index.js';
import { Kernel } from './kernel.js';
import { XA_CHUNK_MASK, XA_CHUNK_SHIFT, XA_CHUNK_SIZE, xa_node, xarray, type XaNode } from './structs/xarray.js';

/** xa_mk_node / xa_to_node: a node pointer in a slot or the head has bit 1 set (include/linux/xarray.h). */
const XA_NODE_TAG = 2n;
/** Deepest tree over a 32-bit index: ceil(32 / XA_CHUNK_SHIFT) levels. */
const XA_MAX_LEVELS = 6;

function isNode(entry: bigint): boolean {
  // xa_is_node(): internal entries above 4096 are nodes (below are retry/sibling/zero markers).
  return (entry & 3n) === XA_NODE_TAG && entry > 4096n;
}

/**
 * Stores entries in an xarray that lives in kernel memory, as xa_store()
 * does: grows the tree at the top when the index does not fit, then
 * descends, creating nodes on the way. Nodes come from `allocNode`, the
 * radix_tree_node slab.
 */
export class XarrayWriter {
  constructor(
    readonly kernel: Kernel,
    /** Kernel virtual address of the struct xarray. */
    readonly xa: bigint,
    readonly allocNode: () => bigint,
  ) {}

  private readNode(addr: bigint): XaNode {
    return xa_node.decode(viewOf(this.kernel.ram.read(this.kernel.pa(addr), xa_node.size)));
  }
  private writeNode(addr: bigint, node: XaNode): void {
    this.kernel.ram.write(this.kernel.pa(addr), xa_node.toBytes(node));
  }
  private head(): bigint {
    return this.kernel.ram.readU64(this.kernel.pa(this.xa) + BigInt(xarray.offsetOf.xa_head));
  }
  private setHead(v: bigint): void {
    this.kernel.ram.writeU64(this.kernel.pa(this.xa) + BigInt(xarray.offsetOf.xa_head), v);
  }

  private newNode(shift: number, parent: bigint, offset: number): bigint {
    const addr = this.allocNode();
    const self = addr + BigInt(xa_node.offsetOf.private_list);
    this.writeNode(addr, {
      ...xa_node.zero(), shift, offset, parent, array: this.xa,
      private_list: { next: self, prev: self },
      slots: new Array<bigint>(XA_CHUNK_SIZE).fill(0n),
    });
    return addr;
  }

  /** Stores `entry` (a pointer, 4-byte aligned) at `index`. */
  store(index: number, entry: bigint): void {
    if (!Number.isInteger(index) || index < 0 || index > 0xffffffff) throw new InternalError(`xarray index ${index} out of range`);
    if ((entry & 3n) !== 0n || entry === 0n) throw new InternalError(`xarray entry 0x${entry.toString(16)} is not an aligned pointer`);
    let head = this.head();
    if (head === 0n && index === 0) { this.setHead(entry); return; }
    if (head === 0n) {
      let shift = 0;
      while (index >= 2 ** (shift + XA_CHUNK_SHIFT)) shift += XA_CHUNK_SHIFT;
      head = this.newNode(shift, 0n, 0) + XA_NODE_TAG;
      this.setHead(head);
    } else if (!isNode(head)) {
      // A lone entry at index 0 moves into slot 0 of a first node.
      const first = this.newNode(0, 0n, 0);
      const node = this.readNode(first);
      node.slots[0] = head;
      node.count = 1;
      this.writeNode(first, node);
      head = first + XA_NODE_TAG;
      this.setHead(head);
    }
    // Grow at the top (xas_expand): a new root whose slot 0 holds the old one, until the index fits.
    for (let level = 0; ; level++) {
      const root = this.readNode(head - XA_NODE_TAG);
      if (index < 2 ** (root.shift + XA_CHUNK_SHIFT)) break;
      if (level >= XA_MAX_LEVELS) throw new InternalError(`xarray at 0x${this.xa.toString(16)} is deeper than ${XA_MAX_LEVELS} levels`);
      const up = this.newNode(root.shift + XA_CHUNK_SHIFT, 0n, 0);
      const node = this.readNode(up);
      node.slots[0] = head;
      node.count = 1;
      this.writeNode(up, node);
      this.writeNode(head - XA_NODE_TAG, { ...root, parent: up, offset: 0 });
      head = up + XA_NODE_TAG;
      this.setHead(head);
    }
    // Descend to the leaf, creating nodes.
    let addr = head - XA_NODE_TAG;
    for (let depth = 0; depth <= XA_MAX_LEVELS; depth++) {
      const node = this.readNode(addr);
      const offset = Math.floor(index / 2 ** node.shift) & XA_CHUNK_MASK;
      if (node.shift === 0) {
        if (node.slots[offset] === 0n) node.count++;
        node.slots[offset] = entry;
        this.writeNode(addr, node);
        return;
      }
      let child = node.slots[offset];
      if (child === 0n) {
        child = this.newNode(node.shift - XA_CHUNK_SHIFT, addr, offset) + XA_NODE_TAG;
        node.slots[offset] = child;
        node.count++;
        this.writeNode(addr, node);
      } else if (!isNode(child)) {
        throw new InternalError(`xarray at 0x${this.xa.toString(16)}: slot ${offset} of a node with shift ${node.shift} holds an entry, not a node`);
      }
      addr = child - XA_NODE_TAG;
    }
    throw new InternalError(`xarray at 0x${this.xa.toString(16)}: no leaf after ${XA_MAX_LEVELS} levels`);
  }
}
