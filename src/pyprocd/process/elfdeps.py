"""What a program needs to run in an empty root: its interpreter and shared libraries.

A small ELF reader (PT_INTERP, DT_NEEDED, DT_RPATH, DT_RUNPATH; 32/64-bit, either
byte order, read from the file's own header: no host assumption) and the search
ujail makes (spec jail.md §5): the object's RUNPATH, the RPATHs inherited along the
chain, /lib, /lib64, /usr/lib, then /etc/ld.so.conf (with its `include` globs).
Two refinements over ujail: a string-table address is mapped through the PT_LOAD
segment that contains it (not only the first one), and a library found in a
directory must match the requesting object's ELF class and machine (a 32-bit
libc in /lib is skipped for a 64-bit program), as the dynamic loader itself does.

    dependencies(path) -> [absolute path, ...]   the path itself first; raises DepsError
"""

import os
import struct

PT_LOAD, PT_DYNAMIC, PT_INTERP = 1, 2, 3
DT_NULL, DT_NEEDED, DT_STRTAB, DT_STRSZ, DT_RPATH, DT_RUNPATH = 0, 1, 5, 10, 15, 29
DEFAULT_DIRS = ("/lib", "/lib64", "/usr/lib")
MAX_HEADER = 1 << 20  # program headers and dynamic arrays are small; a bigger claim is bogus


class DepsError(ValueError):
    """A dependency cannot be found or a file cannot be read; str() is the reason."""


class ElfInfo:
    __slots__ = ("interp", "kind", "needed", "rpath", "runpath")

    def __init__(self, kind):
        self.kind = kind  # (class, byte order, machine)
        self.interp = None
        self.needed = []
        self.rpath = []
        self.runpath = []


def _read_at(f, offset, size):
    if size > MAX_HEADER or offset < 0:
        raise DepsError("implausible ELF header sizes")
    f.seek(offset)
    data = f.read(size)
    if len(data) != size:
        raise DepsError("truncated ELF file")
    return data


def _layout(ident):
    """struct formats for this file's class and byte order."""
    order = {1: "<", 2: ">"}.get(ident[5])
    if ident[4] not in (1, 2) or order is None:
        raise DepsError("unknown ELF class or byte order")
    if ident[4] == 2:
        return order, order + "QHH", 32, 54, order + "IIQQQQQQ", order + "qQ"
    return order, order + "IHH", 28, 42, order + "IIIIIIII", order + "iI"


def _segments(f, ident):
    """[(type, offset, vaddr, filesz)] of the program headers."""
    order, _, phoff_at, phent_at, ph_format, _ = _layout(ident)
    head = _read_at(f, 0, 64 if ident[4] == 2 else 52)
    (phoff,) = struct.unpack_from(order + ("Q" if ident[4] == 2 else "I"), head, phoff_at)
    phentsize, phnum = struct.unpack_from(order + "HH", head, phent_at)
    if phentsize < struct.calcsize(ph_format):
        raise DepsError("bad ELF program header size")
    table = _read_at(f, phoff, phentsize * phnum)
    segments = []
    for i in range(phnum):
        fields = struct.unpack_from(ph_format, table, i * phentsize)
        if ident[4] == 2:   # type, flags, offset, vaddr, paddr, filesz, ...
            segments.append((fields[0], fields[2], fields[3], fields[5]))
        else:               # type, offset, vaddr, paddr, filesz, ...
            segments.append((fields[0], fields[1], fields[2], fields[4]))
    return segments


def _file_offset(segments, address):
    for kind, offset, vaddr, filesz in segments:
        if kind == PT_LOAD and vaddr <= address < vaddr + filesz:
            return address - vaddr + offset
    raise DepsError("ELF string table outside every loaded segment")


def read_elf(f, ident):
    """ElfInfo of an open ELF file whose first 20 bytes are `ident`."""
    order = _layout(ident)[0]
    (machine,) = struct.unpack_from(order + "H", ident, 18)
    info = ElfInfo((ident[4], ident[5], machine))
    segments = _segments(f, ident)
    dynamic = None
    for kind, offset, _vaddr, filesz in segments:
        if kind == PT_INTERP:
            info.interp = _read_at(f, offset, filesz).split(b"\0", 1)[0]
        elif kind == PT_DYNAMIC:
            dynamic = (offset, filesz)
    if dynamic is None:
        return info  # static: nothing else to load
    dyn_format = _layout(ident)[5]
    size = struct.calcsize(dyn_format)
    data = _read_at(f, dynamic[0], dynamic[1])
    entries = []
    for at in range(0, len(data) - size + 1, size):
        tag, value = struct.unpack_from(dyn_format, data, at)
        if tag == DT_NULL:
            break
        entries.append((tag, value))
    tags = dict(entries)
    if DT_STRTAB not in tags:
        return info
    strtab = _read_at(f, _file_offset(segments, tags[DT_STRTAB]), tags.get(DT_STRSZ, 0))

    def string(index):
        if index >= len(strtab):
            raise DepsError("ELF dynamic string out of range")
        return strtab[index:strtab.index(b"\0", index)] if b"\0" in strtab[index:] else strtab[index:]

    for tag, value in entries:
        if tag == DT_NEEDED:
            info.needed.append(string(value))
        elif tag == DT_RPATH:
            info.rpath.append(string(value))
        elif tag == DT_RUNPATH:
            info.runpath.append(string(value))
    return info


def _search_path(entries, origin):
    """RPATH/RUNPATH strings -> existing directories ($ORIGIN expanded)."""
    dirs = []
    for entry in entries:
        for part in entry.split(b":"):
            part = part.replace(b"${ORIGIN}", origin).replace(b"$ORIGIN", origin)
            part = part or os.getcwdb()
            if os.path.isdir(part):
                dirs.append(part)
    return dirs


def ld_so_conf_dirs(path=b"/etc/ld.so.conf", seen=None):
    """The directories ld.so.conf lists, `include` globs followed (each file once)."""
    import glob

    seen = set() if seen is None else seen
    if path in seen:
        return []
    seen.add(path)
    try:
        with open(path, "rb") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    dirs = []
    for line in lines:
        line = line.split(b"#", 1)[0].strip()
        if len(line) < 2:
            continue
        if line.startswith(b"include") and line[7:8] in (b" ", b"\t"):
            pattern = line[8:].strip()
            if not pattern.startswith(b"/"):
                pattern = os.path.join(os.path.dirname(path), pattern)
            for name in sorted(glob.glob(pattern)):
                dirs.extend(ld_so_conf_dirs(name, seen))
        else:
            dirs.append(line)
    return dirs


class Resolver:
    """Walks one program's dependency tree; `found` keeps the order files were met."""

    def __init__(self, default_dirs=None):
        if default_dirs is None:
            default_dirs = [os.fsencode(d) for d in DEFAULT_DIRS if os.path.isdir(d)]
            default_dirs += ld_so_conf_dirs()
        self.default_dirs = default_dirs
        self.found = []
        self._seen = set()
        self._libs = {}

    def scan(self, path, rpath=()):
        """Add absolute `path` and everything it needs."""
        path = os.fsencode(path)
        if path in self._seen:
            return
        self._seen.add(path)
        self.found.append(path)
        if not os.path.exists(path):
            raise DepsError(f"{os.fsdecode(path)} does not exist")
        if not os.path.isfile(path):
            return  # a directory or device: bound as it is
        try:
            with open(path, "rb") as f:
                head = f.read(256)
                if head.startswith(b"#!"):
                    self._scan_script(path, head)
                elif head.startswith(b"\x7fELF") and len(head) >= 20:
                    self._scan_elf(path, read_elf(f, head[:20]), rpath)
        except OSError as e:
            raise DepsError(f"cannot read {os.fsdecode(path)}: {e.strerror or e}") from None
        except (struct.error, DepsError) as e:
            raise DepsError(f"{os.fsdecode(path)}: {e}") from None

    def _scan_script(self, path, head):
        line = head[2:].split(b"\n", 1)[0]
        start = line.find(b"/")
        if start < 0:
            return
        end = start
        while end < len(line) and 0x20 < line[end] <= 0x7E:
            end += 1
        self.scan(line[start:end])

    def _scan_elf(self, path, info, inherited):
        if info.interp:
            self.scan(info.interp)
        origin = os.path.dirname(path)
        runpath = _search_path(info.runpath, origin)
        rpath = list(inherited) + ([] if info.runpath else _search_path(info.rpath, origin))
        for name in info.needed:
            self.scan(self._find(name, info.kind, runpath + rpath), rpath)

    def _find(self, name, kind, first_dirs):
        if b"/" in name:
            return name
        cached = self._libs.get((name, kind))
        if cached:
            return cached
        for directory in list(first_dirs) + list(self.default_dirs):
            candidate = os.path.join(directory, name)
            if _same_kind(candidate, kind):
                self._libs[(name, kind)] = candidate
                return candidate
        raise DepsError(f"library {os.fsdecode(name)} not found")


def _same_kind(path, kind):
    try:
        with open(path, "rb") as f:
            ident = f.read(20)
    except OSError:
        return False
    if len(ident) < 20 or not ident.startswith(b"\x7fELF"):
        return False
    try:
        order = _layout(ident)[0]
    except DepsError:
        return False
    return (ident[4], ident[5], struct.unpack_from(order + "H", ident, 18)[0]) == kind


def dependencies(path, resolver=None):
    """[path, its interpreter, its libraries, ...] as absolute bytes paths."""
    resolver = resolver or Resolver()
    resolver.scan(path)
    return resolver.found
