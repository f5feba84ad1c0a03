//! The 12-byte command field shared by the v1 header and the v2 long form.

use super::WireError;

/// Core's CMessageHeader::COMMAND_SIZE: commands are 12 bytes, NUL-padded.
pub(crate) const COMMAND_LEN: usize = 12;

/// The padding byte after the command's last character.
const PAD: u8 = 0;

/// Reads a command field the way Core's `IsMessageTypeValid` does: printable
/// ASCII up to the first NUL, then nothing but NULs.
///
/// The `bitcoin` crate's `CommandString` decoder only trims trailing NULs, so
/// it would accept `"ver\0ack"`; checking here keeps such a field from ever
/// becoming a command we dispatch on or echo into logs.
pub(crate) fn parse(raw: &[u8; COMMAND_LEN]) -> Result<&str, WireError> {
    let text_len = raw.iter().position(|&b| b == PAD).unwrap_or(COMMAND_LEN);
    let (text, padding) = raw
        .split_at_checked(text_len)
        .ok_or(WireError::BadCommand)?;
    if !text.iter().all(|b| b.is_ascii_graphic() || *b == b' ') || padding.iter().any(|&b| b != PAD)
    {
        return Err(WireError::BadCommand);
    }
    std::str::from_utf8(text).map_err(|_| WireError::BadCommand)
}

/// A loggable rendering of a command field that may be invalid: escapes
/// anything non-printable so a hostile field cannot forge log lines.
pub(crate) fn display(raw: &[u8; COMMAND_LEN]) -> String {
    match parse(raw) {
        Ok(command) => command.to_owned(),
        Err(_) => raw.escape_ascii().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(text: &[u8]) -> [u8; COMMAND_LEN] {
        let mut raw = [0u8; COMMAND_LEN];
        raw[..text.len()].copy_from_slice(text);
        raw
    }

    #[test]
    fn accepts_padded_printable_commands() {
        assert_eq!(parse(&field(b"version")), Ok("version"));
        assert_eq!(parse(&field(b"sendaddrv2")), Ok("sendaddrv2"));
        assert_eq!(parse(&field(b"twelve_chars")), Ok("twelve_chars"));
        // Core accepts an all-NUL field too; it is just an unknown command.
        assert_eq!(parse(&field(b"")), Ok(""));
    }

    #[test]
    fn rejects_bytes_after_the_padding_and_non_printables() {
        assert_eq!(parse(&field(b"ver\0ack")), Err(WireError::BadCommand));
        assert_eq!(
            parse(&field(b"ping\0\0\0\0\0\0\0x")),
            Err(WireError::BadCommand)
        );
        assert_eq!(parse(&field(b"p\x01ng")), Err(WireError::BadCommand));
        assert_eq!(parse(&field(b"caf\xc3\xa9")), Err(WireError::BadCommand));
        assert_eq!(parse(&field(b"tab\tbed")), Err(WireError::BadCommand));
    }

    #[test]
    fn display_escapes_hostile_fields() {
        assert_eq!(display(&field(b"inv")), "inv");
        assert_eq!(
            display(&field(b"a\nb")),
            "a\\nb\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00"
        );
    }
}
