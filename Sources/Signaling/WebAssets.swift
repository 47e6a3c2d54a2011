import Foundation
import Hummingbird
import NIOCore

/// The web pages `parley serve` hands out (the call page at `/call`, its
/// scripts and styles under `/assets/`), read once at start from the
/// package's `Web` resources. Small files, kept in memory; served with a
/// strict Content-Security-Policy (no inline script, media and WebSocket to
/// this origin only) and revalidated by ETag.
struct WebAssets: Sendable {
    struct Asset: Sendable {
        var bytes: ByteBuffer
        var contentType: String
        var etag: String
    }

    let assets: [String: Asset]

    init(bundle: Bundle = .module) {
        var assets: [String: Asset] = [:]
        if let dir = bundle.resourceURL?.appendingPathComponent("Web"),
           let names = try? FileManager.default.contentsOfDirectory(atPath: dir.path) {
            for name in names where !name.hasPrefix(".") {
                guard let data = try? Data(contentsOf: dir.appendingPathComponent(name)) else { continue }
                var hash: UInt64 = 0xcbf2_9ce4_8422_2325
                for b in data { hash = (hash ^ UInt64(b)) &* 0x100_0000_01b3 }
                assets[name] = Asset(bytes: ByteBuffer(bytes: data), contentType: Self.contentType(name),
                                     etag: "\"\(String(hash, radix: 16))\"")
            }
        }
        self.assets = assets
    }

    static func contentType(_ name: String) -> String {
        switch (name as NSString).pathExtension.lowercased() {
        case "html": "text/html; charset=utf-8"
        case "js", "mjs": "text/javascript; charset=utf-8"
        case "css": "text/css; charset=utf-8"
        case "svg": "image/svg+xml"
        case "png": "image/png"
        case "json": "application/json"
        default: "application/octet-stream"
        }
    }

    static let contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        + "media-src 'self' blob:; connect-src 'self' ws: wss:; frame-ancestors 'self'; base-uri 'none'; form-action 'none'"

    /// The response for asset `name`, or 404.
    func response(_ name: String, request: Request) -> Response {
        guard let asset = assets[name] else {
            return Response(status: .notFound, headers: [.contentType: "text/plain; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(string: "not found\n")))
        }
        let headers: HTTPFields = [
            .contentType: asset.contentType, .eTag: asset.etag,
            // Pages and scripts change with the server: revalidate each time (cheap with the ETag).
            .cacheControl: "no-cache",
            .contentSecurityPolicy: Self.contentSecurityPolicy,
            .xContentTypeOptions: "nosniff",
        ]
        if request.headers[.ifNoneMatch] == asset.etag {
            return Response(status: .notModified, headers: headers)
        }
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: asset.bytes))
    }
}
