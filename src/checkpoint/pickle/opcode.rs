//! The pickle opcodes, by the names CPython's `pickletools` gives them, so
//! that the interpreter and the tests read as names rather than byte values.

/// Declares [`OpCode`] and the byte-to-opcode table from a single list, so
/// the two can never disagree (a byte listed twice is an unreachable pattern).
macro_rules! opcodes {
    ($($(#[doc = $doc:literal])* $name:ident = $byte:literal,)*) => {
        /// Every opcode of pickle protocols 0 to 5; the interpreter handles
        /// each of them, if only to refuse it with a clear message.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr(u8)]
        pub(crate) enum OpCode {
            $($(#[doc = $doc])* $name = $byte,)*
        }

        impl OpCode {
            /// All opcodes, in the order of `pickletools.opcodes`.
            #[cfg(test)]
            pub(crate) const ALL: &[OpCode] = &[$(OpCode::$name,)*];

            /// The opcode a byte stands for; `None` for a byte no protocol defines.
            pub(crate) const fn from_byte(byte: u8) -> Option<OpCode> {
                match byte {
                    $($byte => Some(OpCode::$name),)*
                    _ => None,
                }
            }
        }
    };
}

opcodes! {
    // Integers.
    /// `I`: a decimal integer on a text line (`I01`/`I00` are protocol 0's True/False).
    Int = b'I',
    /// `J`: a 4-byte signed little-endian integer.
    BinInt = b'J',
    /// `K`: a 1-byte unsigned integer.
    BinInt1 = b'K',
    /// `M`: a 2-byte unsigned little-endian integer.
    BinInt2 = b'M',
    /// `L`: a decimal integer of any size on a text line, with a trailing `L`.
    Long = b'L',
    /// `0x8a`: a two's complement integer of at most 255 bytes.
    Long1 = 0x8a,
    /// `0x8b`: a two's complement integer with a 4-byte length.
    Long4 = 0x8b,

    // Strings and bytes.
    /// `S`: a quoted, escaped text string (protocol 0; torch never writes it).
    String = b'S',
    /// `T`: a Python 2 `str` with a 4-byte length.
    BinString = b'T',
    /// `U`: a Python 2 `str` with a 1-byte length.
    ShortBinString = b'U',
    /// `B`: bytes with a 4-byte length.
    BinBytes = b'B',
    /// `C`: bytes with a 1-byte length.
    ShortBinBytes = b'C',
    /// `0x8e`: bytes with an 8-byte length.
    BinBytes8 = 0x8e,
    /// `0x96`: a `bytearray` with an 8-byte length.
    ByteArray8 = 0x96,
    /// `0x97`: the next out-of-band buffer, which a file cannot carry.
    NextBuffer = 0x97,
    /// `0x98`: makes the buffer on top read-only.
    ReadOnlyBuffer = 0x98,
    /// `V`: a raw-unicode-escaped text string (protocol 0; torch never writes it).
    Unicode = b'V',
    /// `X`: UTF-8 text with a 4-byte length.
    BinUnicode = b'X',
    /// `0x8c`: UTF-8 text with a 1-byte length.
    ShortBinUnicode = 0x8c,
    /// `0x8d`: UTF-8 text with an 8-byte length.
    BinUnicode8 = 0x8d,

    // Floats.
    /// `F`: a float on a text line.
    Float = b'F',
    /// `G`: an 8-byte big-endian IEEE double.
    BinFloat = b'G',

    // Containers.
    /// `]`: a new empty list.
    EmptyList = b']',
    /// `a`: appends the top value to the list below it.
    Append = b'a',
    /// `e`: appends everything above the MARK to the list below it.
    Appends = b'e',
    /// `l`: a list of everything above the MARK.
    List = b'l',
    /// `)`: the empty tuple.
    EmptyTuple = b')',
    /// `t`: a tuple of everything above the MARK.
    Tuple = b't',
    /// `0x85`: a tuple of the top value.
    Tuple1 = 0x85,
    /// `0x86`: a tuple of the two top values.
    Tuple2 = 0x86,
    /// `0x87`: a tuple of the three top values.
    Tuple3 = 0x87,
    /// `}`: a new empty dict.
    EmptyDict = b'}',
    /// `d`: a dict of the key/value pairs above the MARK.
    Dict = b'd',
    /// `s`: sets one key to one value in the dict below them.
    SetItem = b's',
    /// `u`: sets the key/value pairs above the MARK in the dict below it.
    SetItems = b'u',
    /// `0x8f`: a new empty set.
    EmptySet = 0x8f,
    /// `0x90`: adds everything above the MARK to the set below it.
    AddItems = 0x90,
    /// `0x91`: a frozenset of everything above the MARK.
    FrozenSet = 0x91,

    // Constants.
    /// `N`: `None`.
    None = b'N',
    /// `0x88`: `True`.
    NewTrue = 0x88,
    /// `0x89`: `False`.
    NewFalse = 0x89,

    // The stack.
    /// `0`: discards the top value (or a bare MARK).
    Pop = b'0',
    /// `2`: pushes the top value again.
    Dup = b'2',
    /// `(`: marks where a variable-length group of values starts.
    Mark = b'(',
    /// `1`: discards everything above the MARK, and the MARK.
    PopMark = b'1',

    // The memo.
    /// `g`: pushes a memo entry whose index is on a text line.
    Get = b'g',
    /// `h`: pushes a memo entry with a 1-byte index.
    BinGet = b'h',
    /// `j`: pushes a memo entry with a 4-byte index.
    LongBinGet = b'j',
    /// `p`: stores the top value in the memo at an index on a text line.
    Put = b'p',
    /// `q`: stores the top value in the memo at a 1-byte index.
    BinPut = b'q',
    /// `r`: stores the top value in the memo at a 4-byte index.
    LongBinPut = b'r',
    /// `0x94`: stores the top value at the next free memo index.
    Memoize = 0x94,

    // Extensions.
    /// `0x82`: a global from the copyreg extension registry, 1-byte code.
    Ext1 = 0x82,
    /// `0x83`: a global from the copyreg extension registry, 2-byte code.
    Ext2 = 0x83,
    /// `0x84`: a global from the copyreg extension registry, 4-byte code.
    Ext4 = 0x84,

    // Classes, functions and objects.
    /// `c`: a global named by a module line and a name line.
    Global = b'c',
    /// `0x93`: a global named by the two strings on top of the stack.
    StackGlobal = 0x93,
    /// `R`: calls the callable below the top with the top as arguments.
    Reduce = b'R',
    /// `b`: sets the state of the object below the top.
    Build = b'b',
    /// `i`: calls a global named by two text lines with the values above the MARK.
    Inst = b'i',
    /// `o`: calls the first value above the MARK with the others.
    Obj = b'o',
    /// `0x81`: `cls.__new__(cls, *args)`.
    NewObj = 0x81,
    /// `0x92`: `cls.__new__(cls, *args, **kwargs)`.
    NewObjEx = 0x92,

    // Framing and protocol.
    /// `0x80`: the protocol version, first in a protocol 2+ pickle.
    Proto = 0x80,
    /// `.`: the end of the pickle; the top value is its result.
    Stop = b'.',
    /// `0x95`: the length of the next frame, a buffering hint.
    Frame = 0x95,

    // Persistent ids.
    /// `P`: a persistent id on a text line.
    PersId = b'P',
    /// `Q`: the top value is a persistent id.
    BinPersId = b'Q',
}

impl TryFrom<u8> for OpCode {
    /// The byte itself, which is not an opcode.
    type Error = u8;

    fn try_from(byte: u8) -> Result<Self, Self::Error> {
        OpCode::from_byte(byte).ok_or(byte)
    }
}

#[cfg(test)]
mod tests {
    use super::OpCode;

    #[test]
    fn every_opcode_round_trips_through_its_byte() {
        for &op in OpCode::ALL {
            assert_eq!(OpCode::from_byte(op as u8), Some(op), "{op:?}");
            assert_eq!(OpCode::try_from(op as u8), Ok(op), "{op:?}");
        }
    }

    #[test]
    fn the_68_opcodes_of_protocol_5_and_no_other_byte_are_known() {
        assert_eq!(OpCode::ALL.len(), 68);
        let known = (0..=u8::MAX)
            .filter(|&b| OpCode::from_byte(b).is_some())
            .count();
        assert_eq!(known, OpCode::ALL.len(), "two opcodes share a byte");
        assert_eq!(OpCode::try_from(u8::MAX), Err(u8::MAX));
    }
}
