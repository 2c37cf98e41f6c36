// The bytes of the message table (see messages.ts). scripts/build-filter.mjs serves this module
// with the table's bytes; as written here it is empty, which is right for a plain asc build,
// where msg("…") keeps its literal and the table is never read.
export const MESSAGE_TABLE: usize = memory.data(1);
