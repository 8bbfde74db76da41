// What a native binary is built for, read from its header: ELF (Linux), Mach-O (macOS), PE
// (Windows). Each gives its format, its CPU architecture(s) and the libraries it loads by name
// (ELF DT_NEEDED, Mach-O LC_LOAD_DYLIB, PE imports), which for ELF tell glibc from musl.
// Only 64-bit little-endian headers are read past the magic: every target is one, and anything
// else reports an architecture no target has.

const ELF_MACHINES = { 0x03: 'ia32', 0x28: 'arm', 0x3e: 'x64', 0xb7: 'arm64' };
const MACHO_CPUS = { 0x7: 'ia32', 0xc: 'arm', 0x01000007: 'x64', 0x0100000c: 'arm64' };
const PE_MACHINES = { 0x14c: 'ia32', 0x1c4: 'arm', 0x8664: 'x64', 0xaa64: 'arm64' };
const hex = (n) => `0x${n.toString(16)}`;

/** @returns {{ format: 'ELF' | 'Mach-O' | 'PE', arch: string[], libc?: string, loads: string[] } | null} */
export function readBinary(bytes) {
  if (bytes.length < 64) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, false) === 0x7f454c46) return readElf(bytes, view);
  const magic = view.getUint32(0, true);
  if (magic === 0xfeedfacf || magic === 0xfeedface) return readMachO(bytes, view, 0);
  // Universal binary: a table of slices, big-endian. (Java class files share the magic; their
  // "count" is a version number far above any real slice count.)
  if (view.getUint32(0, false) === 0xcafebabe && view.getUint32(4, false) < 16) {
    const slices = Array.from({ length: view.getUint32(4, false) }, (_, i) =>
      readMachO(bytes, view, view.getUint32(8 + 20 * i + 8, false)),
    );
    return {
      format: 'Mach-O',
      arch: slices.flatMap((s) => s.arch),
      loads: [...new Set(slices.flatMap((s) => s.loads))],
    };
  }
  if (view.getUint16(0, true) === 0x5a4d) {
    const pe = view.getUint32(0x3c, true);
    if (pe + 24 <= bytes.length && view.getUint32(pe, false) === 0x50450000) return readPe(bytes, view, pe);
  }
  return null;
}

function cString(bytes, offset) {
  const end = bytes.indexOf(0, offset);
  return Buffer.from(bytes.subarray(offset, end < 0 ? bytes.length : end)).toString('latin1');
}

function readElf(bytes, view) {
  const machine = view.getUint16(18, true);
  const arch = [ELF_MACHINES[machine] ?? hex(machine)];
  if (bytes[4] !== 2 || bytes[5] !== 1)
    return { format: 'ELF', arch: [`${arch[0]} (32-bit or big-endian)`], loads: [] };
  // Program headers: PT_LOAD maps addresses to file offsets, PT_DYNAMIC holds DT_NEEDED and DT_STRTAB.
  const phoff = Number(view.getBigUint64(32, true));
  const [phentsize, phnum] = [view.getUint16(54, true), view.getUint16(56, true)];
  const loads = [];
  let dynamic;
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    const segment = {
      type: view.getUint32(at, true),
      offset: Number(view.getBigUint64(at + 8, true)),
      vaddr: Number(view.getBigUint64(at + 16, true)),
      filesz: Number(view.getBigUint64(at + 32, true)),
    };
    if (segment.type === 1) loads.push(segment);
    if (segment.type === 2) dynamic = segment;
  }
  const needed = [];
  let strtab;
  for (let at = dynamic?.offset ?? 0; dynamic && at < dynamic.offset + dynamic.filesz; at += 16) {
    const tag = Number(view.getBigInt64(at, true));
    const value = Number(view.getBigUint64(at + 8, true));
    if (tag === 0) break;
    if (tag === 1) needed.push(value);
    if (tag === 5) strtab = value;
  }
  const load = loads.find((s) => strtab >= s.vaddr && strtab < s.vaddr + s.filesz);
  const names = load ? needed.map((n) => cString(bytes, load.offset + strtab - load.vaddr + n)) : [];
  const libc = names.includes('libc.so.6') ? 'glibc' : names.some((n) => n.startsWith('libc.musl-')) ? 'musl' : 'none';
  return { format: 'ELF', arch, libc, loads: names };
}

function readMachO(bytes, view, start) {
  const cpu = view.getUint32(start + 4, true);
  const arch = [MACHO_CPUS[cpu] ?? hex(cpu)];
  if (view.getUint32(start, true) !== 0xfeedfacf) return { format: 'Mach-O', arch: [`${arch[0]} (32-bit)`], loads: [] };
  const loads = [];
  // Load commands follow the 32-byte header; dylib commands (LC_LOAD_DYLIB, LC_LOAD_WEAK_DYLIB,
  // LC_REEXPORT_DYLIB) hold the library's install name at the offset in their third field.
  let at = start + 32;
  for (let i = 0; i < view.getUint32(start + 16, true); i++) {
    const [cmd, size] = [view.getUint32(at, true), view.getUint32(at + 4, true)];
    if (cmd === 0xc || cmd === 0x80000018 || cmd === 0x8000001f)
      loads.push(cString(bytes, at + view.getUint32(at + 8, true)));
    at += size;
  }
  return { format: 'Mach-O', arch, loads };
}

function readPe(bytes, view, pe) {
  const machine = view.getUint16(pe + 4, true);
  const arch = [PE_MACHINES[machine] ?? hex(machine)];
  const optional = pe + 24;
  if (view.getUint16(optional, true) !== 0x20b) return { format: 'PE', arch: [`${arch[0]} (PE32)`], loads: [] };
  // Section table: to turn the import tables' relative addresses into file offsets.
  const sectionsAt = optional + view.getUint16(pe + 20, true);
  const sections = Array.from({ length: view.getUint16(pe + 6, true) }, (_, i) => ({
    rva: view.getUint32(sectionsAt + 40 * i + 12, true),
    size: view.getUint32(sectionsAt + 40 * i + 16, true),
    raw: view.getUint32(sectionsAt + 40 * i + 20, true),
  }));
  const offset = (rva) => {
    const s = sections.find((s) => rva >= s.rva && rva < s.rva + s.size);
    return s ? s.raw + rva - s.rva : undefined;
  };
  const loads = [];
  // Data directory 1: imports (20-byte entries, name at +12); 13: delay-loaded imports (32-byte, name at +4).
  for (const [index, entrySize, nameAt] of [
    [1, 20, 12],
    [13, 32, 4],
  ]) {
    let at = offset(view.getUint32(optional + 112 + 8 * index, true));
    for (; at !== undefined && view.getUint32(at + nameAt, true) !== 0; at += entrySize) {
      const name = offset(view.getUint32(at + nameAt, true));
      if (name !== undefined) loads.push(cString(bytes, name));
    }
  }
  return { format: 'PE', arch, loads };
}
