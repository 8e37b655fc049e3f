//! The parts of Sawtooth 1.2's TP registration that the `sawtooth-sdk` 0.5
//! protos do not have: `TpRegisterRequest.protocol_version` (field 6) and
//! `request_header_style` (field 7), `TpRegisterResponse.protocol_version`
//! (field 2) and `TpProcessRequest.header_bytes` (field 5).
//!
//! protobuf 2 keeps fields it does not know as unknown fields and writes them
//! back, so they are read and written here by number. The rules are the
//! validator's: a TP asking for a protocol version above the highest one the
//! validator knows is refused (and told that version); otherwise the requested
//! version is echoed, which is what the SDKs check. A TP registered with the
//! RAW header style gets the transaction header as the signed bytes in
//! `header_bytes` and an empty `header`; every other TP gets the parsed header
//! and no `header_bytes`.
use protobuf::Message as _;
use sawtooth_sdk::messages::processor::{TpProcessRequest, TpRegisterRequest, TpRegisterResponse};

/// Highest registration protocol version understood (Sawtooth 1.2's
/// `MAX_SDK_PROTOCOL_VERSION`: 1 = custom header style).
pub const MAX_PROTOCOL_VERSION: u32 = 1;

const REQUEST_PROTOCOL_VERSION: u32 = 6;
const REQUEST_HEADER_STYLE: u32 = 7;
const RESPONSE_PROTOCOL_VERSION: u32 = 2;
const PROCESS_HEADER_BYTES: u32 = 5;

/// How a TP wants the transaction header in its process requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderStyle {
    /// The parsed `TransactionHeader` (the default, `HEADER_STYLE_UNSET` or `EXPANDED`).
    Expanded,
    /// The header's serialized bytes as signed, in `header_bytes`.
    Raw,
}

/// What a TP asked for when it registered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegistrationTerms {
    pub protocol_version: u32,
    pub header_style: HeaderStyle,
}

/// Why a registration is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The TP needs a newer protocol than this validator speaks.
    ProtocolTooNew(u64),
    /// A header style that Sawtooth does not define.
    UnknownHeaderStyle(u64),
}

fn last_varint(message: &impl protobuf::Message, field: u32) -> u64 {
    message
        .get_unknown_fields()
        .get(field)
        .and_then(|values| values.varint.last().copied())
        .unwrap_or(0)
}

/// Reads the protocol version and header style a TP asked for.
pub fn registration_terms(request: &TpRegisterRequest) -> Result<RegistrationTerms, Refusal> {
    let version = last_varint(request, REQUEST_PROTOCOL_VERSION);
    if version > u64::from(MAX_PROTOCOL_VERSION) {
        return Err(Refusal::ProtocolTooNew(version));
    }
    let header_style = match last_varint(request, REQUEST_HEADER_STYLE) {
        0 | 1 => HeaderStyle::Expanded,
        2 => HeaderStyle::Raw,
        other => return Err(Refusal::UnknownHeaderStyle(other)),
    };
    Ok(RegistrationTerms {
        protocol_version: version as u32,
        header_style,
    })
}

/// Sets `TpRegisterResponse.protocol_version` (omitted when 0, as proto3 does).
pub fn set_response_protocol_version(response: &mut TpRegisterResponse, version: u32) {
    let fields = response.mut_unknown_fields();
    fields.remove(RESPONSE_PROTOCOL_VERSION);
    if version != 0 {
        fields.add_varint(RESPONSE_PROTOCOL_VERSION, u64::from(version));
    }
}

/// Attaches the transaction header's signed bytes to a process request, for
/// TPs registered with the RAW style; [`for_header_style`] removes them again
/// for everyone else.
pub fn attach_header_bytes(request: &mut TpProcessRequest, header_bytes: &[u8]) {
    let fields = request.mut_unknown_fields();
    fields.remove(PROCESS_HEADER_BYTES);
    fields.add_length_delimited(PROCESS_HEADER_BYTES, header_bytes.to_vec());
}

/// The process request as a TP registered with `style` must receive it.
pub fn for_header_style(request: &TpProcessRequest, style: HeaderStyle) -> TpProcessRequest {
    let mut outgoing = request.clone();
    match style {
        HeaderStyle::Expanded => outgoing.mut_unknown_fields().remove(PROCESS_HEADER_BYTES),
        // The executor attached the signed bytes (`attach_header_bytes`);
        // re-serialising the parsed header could differ from what was signed.
        HeaderStyle::Raw => outgoing.clear_header(),
    }
    outgoing
}

#[cfg(test)]
mod tests {
    use super::*;
    use sawtooth_sdk::messages::transaction::TransactionHeader;

    fn register_request(version: u64, style: u64) -> TpRegisterRequest {
        let mut request = TpRegisterRequest::new();
        request.set_family("intkey".into());
        request.mut_unknown_fields().add_varint(6, version);
        request.mut_unknown_fields().add_varint(7, style);
        TpRegisterRequest::parse_from_bytes(&request.write_to_bytes().unwrap()).unwrap()
    }

    #[test]
    fn unset_and_expanded_styles_get_the_parsed_header_and_raw_gets_the_bytes() {
        assert_eq!(
            registration_terms(&TpRegisterRequest::new()),
            Ok(RegistrationTerms {
                protocol_version: 0,
                header_style: HeaderStyle::Expanded
            })
        );
        assert_eq!(
            registration_terms(&register_request(1, 2)),
            Ok(RegistrationTerms {
                protocol_version: 1,
                header_style: HeaderStyle::Raw
            })
        );
        assert_eq!(
            registration_terms(&register_request(1, 1)).map(|t| t.header_style),
            Ok(HeaderStyle::Expanded)
        );
    }

    #[test]
    fn a_newer_protocol_or_an_unknown_style_is_refused() {
        assert_eq!(
            registration_terms(&register_request(2, 0)),
            Err(Refusal::ProtocolTooNew(2))
        );
        assert_eq!(
            registration_terms(&register_request(1, 9)),
            Err(Refusal::UnknownHeaderStyle(9))
        );
    }

    #[test]
    fn the_response_carries_the_protocol_version_as_field_2() {
        let mut response = TpRegisterResponse::new();
        set_response_protocol_version(&mut response, 1);
        let bytes = response.write_to_bytes().unwrap();
        assert!(bytes.windows(2).any(|w| w == [0x10, 0x01]), "{bytes:?}");
        set_response_protocol_version(&mut response, 0);
        assert!(response.write_to_bytes().unwrap().is_empty());
    }

    #[test]
    fn raw_requests_carry_the_signed_bytes_and_no_parsed_header() {
        let mut header = TransactionHeader::new();
        header.set_family_name("intkey".into());
        let signed = header.write_to_bytes().unwrap();
        let mut request = TpProcessRequest::new();
        request.set_header(header.clone());
        attach_header_bytes(&mut request, &signed);

        let raw = for_header_style(&request, HeaderStyle::Raw);
        assert!(!raw.has_header());
        let decoded = TpProcessRequest::parse_from_bytes(&raw.write_to_bytes().unwrap()).unwrap();
        assert_eq!(
            decoded
                .get_unknown_fields()
                .get(5)
                .unwrap()
                .length_delimited,
            vec![signed]
        );

        let expanded = for_header_style(&request, HeaderStyle::Expanded);
        assert_eq!(expanded.get_header(), &header);
        assert!(expanded.get_unknown_fields().get(5).is_none());
    }
}
