"""The operations on a loaded package (libuci semantics).

Each returns the Delta to record (None when nothing changed, as libuci
records no delta for no-op changes) or raises UciError. Replaying a delta
file uses the same functions and ignores the returned delta.
"""


from .model import ERR_INVAL, ERR_NOTFOUND, UciError, valid_type


def _delta(cmd, section, option=None, value=None):
    from .store import Delta

    return Delta(cmd, section, option, value)


def _section(pkg, name, error=ERR_NOTFOUND):
    sec = pkg.section(name)
    if sec is None:
        raise UciError(error)
    return sec


def set_value(pkg, section, option, value):
    sec = pkg.section(section)
    if option is None:
        return _set_section(pkg, sec, section, value)
    if sec is None:
        raise UciError(ERR_INVAL)
    opt = sec.option(option)
    if value == "":
        if opt is None:
            return None
        sec.delete_option(option)
        return _delta("-", section, option)
    if opt is not None and not opt.is_list and opt.value == value:
        return None
    sec.set_option(option, value)
    return _delta("", section, option, value)


def _set_section(pkg, sec, name, type_):
    if type_ == "":
        if sec is None:
            return None
        pkg.remove_section(sec)
        return _delta("-", name)
    if not valid_type(type_):
        raise UciError(ERR_INVAL)
    if sec is None:
        pkg.new_section(type_, name)
    elif sec.type == type_:
        return None
    else:
        pkg.set_section_type(sec, type_)
    return _delta("", name, None, type_)


def add_section(pkg, type_):
    """`uci add`: a new anonymous section (type not validated, like libuci)."""
    sec = pkg.new_section(type_)
    return sec, _delta("+", sec.name, None, type_)


def add_list(pkg, section, option, value):
    sec = _section(pkg, section, ERR_INVAL)
    sec.add_list_item(option, value)
    return _delta("|", section, option, value)


def del_list(pkg, section, option, value):
    sec = _section(pkg, section, ERR_INVAL)
    opt = sec.option(option)
    if opt is None or not opt.is_list:
        return None
    opt.value[:] = [item for item in opt.value if item != value]
    return _delta("~", section, option, value)


def delete(pkg, section, option=None, index=None, index_text=None):
    sec = _section(pkg, section)
    if option is None:
        pkg.remove_section(sec)
        return _delta("-", section)
    opt = sec.option(option)
    if opt is None:
        raise UciError(ERR_NOTFOUND)
    if index is not None and opt.is_list:
        if not 0 <= index < len(opt.value):
            return None
        del opt.value[index]
        return _delta("-", section, option, index_text if index_text is not None else str(index))
    sec.delete_option(option)
    return _delta("-", section, option, index_text)


def rename(pkg, section, option, new_name):
    sec = _section(pkg, section)
    if option is None:
        pkg.rename_section(sec, new_name)
        return _delta("@", section, None, new_name)
    opt = sec.option(option)
    if opt is None:
        raise UciError(ERR_NOTFOUND)
    sec.rename_option(opt, new_name)
    return _delta("@", section, option, new_name)


def _leading_integer(text):
    """strtol's view of text: (sign, digits) after leading blanks, None without digits.

    (No `re`: delta files are replayed inside the daemon, which must not import it.)
    """
    i, n = 0, len(text)
    while i < n and text[i] in " \t\n\v\f\r":
        i += 1
    sign = ""
    if i < n and text[i] in "+-":
        sign, i = text[i], i + 1
    end = i
    while end < n and text[end] in "0123456789":
        end += 1
    return (sign, text[i:end]) if end > i else None


def parse_position(text):
    """strtoul() then use as a signed int: '-1' wraps to -1, junk gives 0."""
    number = _leading_integer(text)
    if number is None:
        return 0
    sign, digits = number
    n = int(digits) & 0xFFFFFFFFFFFFFFFF
    if sign == "-":
        n = (-n) & 0xFFFFFFFFFFFFFFFF
    n &= 0xFFFFFFFF
    return n - (1 << 32) if n & 0x80000000 else n


def parse_index(text):
    """A list index for `delete …=N`: must start with a decimal number."""
    number = _leading_integer(text)
    return None if number is None else int(number[0] + number[1])


def reorder(pkg, section, value):
    sec = _section(pkg, section)
    if value is None:
        raise UciError(ERR_NOTFOUND)
    before = pkg.sections.index(sec)
    pkg.move_section(sec, parse_position(value))
    if pkg.sections.index(sec) == before:
        return None
    return _delta("^", section, None, value)
