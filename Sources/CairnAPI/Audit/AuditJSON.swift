import Foundation
import Hummingbird

/// JSON for the audit documents: `Encodable` values with snake_case keys.
enum AuditJSON {
    /// A `200 application/json` response (or `status`) holding `value`.
    ///
    /// - Throws: `EncodingError` (not for the audit documents, which hold no floats).
    static func response(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        let bytes = try encoder().encode(value)
        return Response(
            status: status, headers: [.contentType: "application/json", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    /// `value` as JSON text (an extra member of a problem document).
    ///
    /// - Throws: `EncodingError`.
    static func text(_ value: some Encodable) throws -> String {
        String(decoding: try encoder().encode(value), as: UTF8.self)
    }

    // A fresh encoder per call: JSONEncoder is not Sendable, and it is cheap to make.
    private static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }
}
