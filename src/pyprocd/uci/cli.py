"""`pyprocd uci …`: the OpenWrt `uci` command line, same output and exit codes.

Messages are prefixed with "uci:" like the real tool's (scripts match on
them). The pure-Python store in this package does the work.
"""

import getopt
import os
import sys

from . import ops
from .model import (
    ERR_INVAL,
    ERR_NOTFOUND,
    ERR_PARSE,
    UciError,
    get_value,
    show_option,
    show_section,
    valid_name,
    valid_package,
    valid_type,
    valid_value,
)
from .parser import TokenError, Tokenizer, parse_import_stream, parse_package
from .store import DEFAULT_CONF2DIR, DEFAULT_CONFDIR, DEFAULT_SAVEDIR, Store, encode

APPNAME = "uci"

USAGE = """Usage: {prog} [<options>] <command> [<arguments>]

Commands:
\tbatch
\texport     [<config>]
\timport     [<config>]
\tchanges    [<config>]
\tcommit     [<config>]
\tadd        <config> <section-type>
\tadd_list   <config>.<section>.<option>=<string>
\tdel_list   <config>.<section>.<option>=<string>
\tshow       [<config>[.<section>[.<option>]]]
\tget        <config>.<section>[.<option>]
\tset        <config>.<section>[.<option>]=<value>
\tdelete     <config>[.<section>[[.<option>][=<id>]]]
\trename     <config>.<section>[.<option>]=<name>
\trevert     <config>[.<section>[.<option>]]
\treorder    <config>.<section>=<position>

Options:
\t-c <path>  set the search path for config files (default: /etc/config)
\t-C <path>  set the search path for config override files (default: /var/run/uci)
\t-d <str>   set the delimiter for list values in uci show
\t-f <file>  use <file> as input instead of stdin
\t-m         when importing, merge data into an existing package
\t-n         name unnamed sections on export (default)
\t-N         don't name unnamed sections
\t-p <path>  add a search path for config change files
\t-P <path>  add a search path for config change files and use as default
\t-t <path>  set save path for config change files
\t-q         quiet mode (don't print error messages)
\t-s         force strict mode (stop on parser errors, default)
\t-S         disable strict mode
\t-X         do not use extended syntax on 'show'

"""

# command -> (min args, max args)
ARG_COUNTS = {
    "batch": (0, 0),
    "export": (0, 1),
    "import": (0, 1),
    "changes": (0, 1),
    "commit": (0, 1),
    "add": (2, 2),
    "add_list": (1, 1),
    "del_list": (1, 1),
    "show": (0, 1),
    "get": (1, 1),
    "set": (1, 1),
    "delete": (1, 1),
    "rename": (1, 1),
    "revert": (1, 1),
    "reorder": (1, 1),
}
ALIASES = {"ren": "rename", "del": "delete"}


class Silent(Exception):
    """Exit with this code and no message (libuci's silent failures)."""

    def __init__(self, code=1):
        super().__init__(code)
        self.code = code


class Usage(Exception):
    pass


class Path:
    """A parsed CLI path `pkg[.sec[.opt]][=value]`."""

    __slots__ = ("option", "package", "section", "value")

    def __init__(self, text):
        self.value = None
        if "=" in text:
            text, self.value = text.split("=", 1)
        parts = text.split(".")
        if len(parts) > 3:
            raise UciError(ERR_PARSE)
        self.package = parts[0]
        self.section = parts[1] if len(parts) > 1 else None
        self.option = parts[2] if len(parts) > 2 else None
        if not valid_package(self.package):
            raise UciError(ERR_PARSE)
        if self.option is not None and not valid_name(self.option):
            raise UciError(ERR_PARSE)
        if self.value is not None and not valid_value(self.value):
            raise UciError(ERR_PARSE)


def parse_extended(ref):
    """`@type[N]` -> (type or None, index); UciError(ERR_INVAL) on bad syntax."""
    if not ref.startswith("@") or "[" not in ref or not ref.endswith("]"):
        raise UciError(ERR_INVAL)
    type_, _, index = ref[1:-1].partition("[")
    if type_ and not valid_type(type_):
        raise UciError(ERR_INVAL)
    if index in ("", "+", "-"):
        return type_ or None, 0
    try:
        return type_ or None, int(index, 10)
    except ValueError:
        raise UciError(ERR_INVAL) from None


def resolve_section(pkg, ref):
    """Section object for a name or `@type[N]`, None if not found."""
    if valid_name(ref):
        return pkg.section(ref)
    type_, index = parse_extended(ref)
    return pkg.lookup_extended(type_, index)


class Cli:
    def __init__(self, stdin, stdout, stderr, default_savedir, default_conf2dir, prog=APPNAME):
        self.prog = prog  # messages name the program as it was invoked (argv[0])
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.store = Store(DEFAULT_CONFDIR, default_conf2dir, default_savedir,
                           on_parse_error=self._print_parse_error, warn=self._warn)
        self.delimiter = " "
        self.input_file = None
        self.merge = False
        self.name_anonymous = False
        self.quiet = False
        self.extended = True

    # -- output ------------------------------------------------------------

    def out(self, text):
        self.stdout.write(encode(text))

    def err(self, text):
        self.stderr.write(encode(text))

    def perror(self, error):
        if not self.quiet:
            self.err(f"{self.prog}: {error.message()}\n")

    def _warn(self, message):
        """A file refused as untrusted (root only): libuci has no such message."""
        if not self.quiet:
            self.err(f"{self.prog}: warning: {message}\n")

    def _print_parse_error(self, error):
        self.err(f"Parse error ({error.reason}) at line {error.line}, byte {error.byte}\n")

    def usage(self):
        self.err(USAGE.format(prog=self.prog))

    # -- options -----------------------------------------------------------

    def parse_options(self, argv):
        opts, args = getopt.getopt(argv, "c:C:d:f:LmnNp:P:qsSt:X")
        for flag, value in opts:
            if flag == "-c":
                self.store.confdir = value
            elif flag == "-C":
                self.store.conf2dir = value
            elif flag == "-d":
                self.delimiter = value
            elif flag == "-f":
                self.input_file = value
            elif flag == "-L":
                raise Usage()
            elif flag == "-m":
                self.merge = True
            elif flag == "-n":
                self.name_anonymous = True
            elif flag == "-N":
                self.name_anonymous = False
            elif flag == "-p":
                self.store.add_delta_path(value)
            elif flag == "-P":
                self.store.set_savedir(value)
                self.store.commit_disabled = True
            elif flag == "-q":
                self.quiet = True
            elif flag == "-s":
                self.store.strict = True
            elif flag == "-S":
                self.store.strict = False
            elif flag == "-t":
                self.store.set_savedir(value)
            elif flag == "-X":
                self.extended = False
        return args

    # -- dispatch ----------------------------------------------------------

    def run(self, args, in_batch=False):
        command = ALIASES.get(args[0].lower(), args[0].lower())
        if command == "help" and not in_batch:
            raise Usage()
        if command not in ARG_COUNTS or (in_batch and command == "batch"):
            raise Usage()
        low, high = ARG_COUNTS[command]
        if not low <= len(args) - 1 <= high:
            raise Usage()
        handler = getattr(self, "cmd_" + command)
        try:
            return handler(*args[1:])
        except UciError as e:
            self.perror(e)
            return 1
        except Silent as e:
            return e.code

    def _load(self, name):
        return self.store.load(name)

    def _lookup(self, text, need_value=None):
        """-> (path, package, section or None, option or None)."""
        path = Path(text)
        if need_value is True and path.value is None:
            raise UciError(ERR_INVAL)
        pkg = self._load(path.package)
        sec = resolve_section(pkg, path.section) if path.section is not None else None
        opt = sec.option(path.option) if sec is not None and path.option else None
        return path, pkg, sec, opt

    def _each_package(self, name, action):
        """Run action(pkg) for one package, or for all (errors don't stop them)."""
        if name is not None:
            action(self._load(name))
            return 0
        for config in self.store.list_configs():
            try:
                action(self._load(config))
            except UciError as e:
                self.perror(e)
        return 0

    # -- commands ----------------------------------------------------------

    def cmd_show(self, arg=None):
        if arg is None:
            return self._each_package(None, lambda p: self.out(p.show(self.extended, self.delimiter)))
        path, pkg, sec, opt = self._lookup(arg)
        if path.value is not None:
            raise Silent(1)
        if path.section is None:
            self.out(pkg.show(self.extended, self.delimiter))
        elif sec is None or (path.option and opt is None):
            raise UciError(ERR_NOTFOUND)
        elif opt is None:
            self.out(show_section(pkg.name, sec.name, sec, self.delimiter))
        else:
            self.out(show_option(pkg.name, sec.name, opt, self.delimiter))
        return 0

    def cmd_get(self, arg):
        path, _pkg, sec, opt = self._lookup(arg)
        if path.value is not None:
            raise Silent(1)
        if path.section is None:
            return 0
        if sec is None or (path.option and opt is None):
            raise UciError(ERR_NOTFOUND)
        self.out((get_value(opt.value, self.delimiter) if opt else sec.type) + "\n")
        return 0

    def _record(self, pkg, delta):
        if delta is not None:
            pkg.pending.append(delta)
        self.store.save(pkg)
        return 0

    def cmd_set(self, arg):
        path, pkg, sec, _ = self._lookup(arg, need_value=True)
        if path.section is None:
            raise UciError(ERR_INVAL)
        if path.option is None and sec is None:
            # An unresolved `@t[N]` becomes a (junk) section of that literal name.
            name = path.section
        else:
            name = sec.name if sec is not None else path.section
        if path.option is not None and sec is None:
            raise UciError(ERR_INVAL)
        if path.option is None and sec is None and path.value and not valid_type(path.value):
            raise UciError(ERR_INVAL)
        return self._record(pkg, ops.set_value(pkg, name, path.option, path.value))

    def cmd_add(self, pkg_name, type_):
        try:
            pkg = self._load(pkg_name)
            sec, delta = ops.add_section(pkg, type_)
            self._record(pkg, delta)
        except UciError as e:
            self.perror(e)
            return e.code
        self.out(sec.name + "\n")
        return 0

    def _list_op(self, arg, op):
        path, pkg, sec, _ = self._lookup(arg, need_value=True)
        if path.section is None or path.option is None:
            raise UciError(ERR_INVAL)
        if sec is None:
            raise UciError(ERR_INVAL)
        return self._record(pkg, op(pkg, sec.name, path.option, path.value))

    def cmd_add_list(self, arg):
        return self._list_op(arg, ops.add_list)

    def cmd_del_list(self, arg):
        return self._list_op(arg, ops.del_list)

    def cmd_delete(self, arg):
        path, pkg, sec, _opt = self._lookup(arg)
        if path.section is None:
            raise UciError(ERR_INVAL)
        if sec is None:
            raise UciError(ERR_NOTFOUND)
        index = None
        if path.value is not None and path.option is not None:
            index = ops.parse_index(path.value)
            if index is None:
                raise Silent(1)
        delta = ops.delete(pkg, sec.name, path.option, index, path.value)
        return self._record(pkg, delta)

    def cmd_rename(self, arg):
        path, pkg, sec, _ = self._lookup(arg)
        if path.section is None or sec is None:
            raise UciError(ERR_NOTFOUND)
        if path.value is None:
            raise UciError(ERR_INVAL)
        return self._record(pkg, ops.rename(pkg, sec.name, path.option, path.value))

    def cmd_reorder(self, arg):
        path, pkg, sec, _ = self._lookup(arg)
        if sec is None or path.value is None or path.option is not None:
            raise UciError(ERR_NOTFOUND)
        return self._record(pkg, ops.reorder(pkg, sec.name, path.value))

    def cmd_changes(self, name=None):
        def show_changes(pkg):
            self.out("".join(d.change_text(pkg.name) for d in pkg.changes))

        return self._each_package(name, show_changes)

    def cmd_revert(self, arg):
        path = Path(arg)
        if path.value is not None:
            raise Silent(1)
        pkg = self._load(path.package)
        section = None
        if path.section is not None:
            try:
                sec = resolve_section(pkg, path.section)
            except UciError:
                return 0
            section = sec.name if sec is not None else path.section
        try:
            self.store.revert(pkg, section, path.option)
        except (UciError, OSError):
            pass
        return 0

    def cmd_commit(self, name=None):
        if self.store.commit_disabled:
            return 0
        if name is not None:
            path = Path(name)
            name = path.package
        return self._each_package(name, self.store.commit)

    def cmd_export(self, name=None):
        return self._each_package(
            name, lambda p: self.out(p.export(header=True, name_anonymous=self.name_anonymous)))

    def _read_input(self):
        if self.input_file is not None:
            with open(self.input_file, "rb") as f:
                return f.read()
        return self.stdin.read()

    def cmd_import(self, name=None):
        if self.merge and name is None:
            raise Usage()
        try:
            text = self._read_input()
            if self.merge:
                return self._import_merge(name, text)
            if name is not None:
                packages = [parse_package(text, name, self.store.strict, self._print_parse_error)]
            else:
                packages = parse_import_stream(text, self.store.strict, self._print_parse_error)
            for pkg in packages:
                self.store.overwrite(pkg)
        except UciError as e:
            self.perror(e)
            return 1
        except OSError:
            self.err(f"{self.prog}: I/O error\n")
            return 1
        return 0

    def _import_merge(self, name, text):
        pkg = self._load(name)
        incoming = parse_package(text, name, self.store.strict, self._print_parse_error)
        for sec in incoming.sections:
            if sec.anonymous:
                target, delta = ops.add_section(pkg, sec.type)
                pkg.pending.append(delta)
            else:
                delta = ops.set_value(pkg, sec.name, None, sec.type)
                if delta is not None:
                    pkg.pending.append(delta)
                target = pkg.section(sec.name)
            for opt in sec.options:
                if opt.is_list:
                    for item in opt.value:
                        pkg.pending.append(ops.add_list(pkg, target.name, opt.name, item))
                else:
                    delta = ops.set_value(pkg, target.name, opt.name, opt.value)
                    if delta is not None:
                        pkg.pending.append(delta)
        self.store.save(pkg)
        return 0

    def cmd_batch(self):
        tok = Tokenizer(self._read_input())
        while tok.next_line():
            words = []
            try:
                while True:
                    tok.skip_whitespace()
                    if tok.at_end():
                        break
                    words.append(tok.next_arg())
            except TokenError:
                self.err(f"{self.prog}: Parse error\n")
                continue
            words = [w for w in words if w] or words
            if not words or not words[0]:
                continue
            if words[0].lower() == "exit":
                break
            if len(words) > 3:
                self.err("Too many arguments\n")
                continue
            try:
                self.run(words, in_batch=True)
            except Usage:
                self.err("Unknown command\n")
        return 0


def main(argv=None, stdin=None, stdout=None, stderr=None,
         default_savedir=None, default_conf2dir=None, prog=APPNAME):
    """Entry point; the keyword arguments let tests run it in-process.

    PYPROCD_UCI_SAVEDIR / PYPROCD_UCI_CONF2DIR replace libuci's built-in
    /tmp/.uci and /var/run/uci (tests and non-router hosts).
    """
    if argv is None:
        argv = sys.argv[1:]
    if default_savedir is None:
        default_savedir = os.environ.get("PYPROCD_UCI_SAVEDIR", DEFAULT_SAVEDIR)
    if default_conf2dir is None:
        default_conf2dir = os.environ.get("PYPROCD_UCI_CONF2DIR", DEFAULT_CONF2DIR)
    cli = Cli(stdin or sys.stdin.buffer, stdout or sys.stdout.buffer, stderr or sys.stderr.buffer,
              default_savedir, default_conf2dir, prog)
    args = []
    try:
        try:
            args = cli.parse_options(argv)
        except getopt.GetoptError as e:
            cli.err(f"{prog}: {e.msg}\n")
            cli.usage()
            return 0
        if not args:
            cli.usage()
            return 0
        return cli.run(args)
    except Usage:
        cli.usage()
        return 0 if (args and args[0].lower() == "help") else 255
    finally:
        try:
            cli.stdout.flush()
            cli.stderr.flush()
        except (OSError, ValueError):
            pass
