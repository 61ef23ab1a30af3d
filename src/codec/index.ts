export * from './errors.js';
export * from './field.js';
export * from './struct.js';
export * from './units.js';
export * from './elf.js';
export * from './elf_note.js';
export * from './vmcoredd.js';
