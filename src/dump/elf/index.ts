export * from '../../codec/elf.js';
export * from './vmcore_writer.js';
