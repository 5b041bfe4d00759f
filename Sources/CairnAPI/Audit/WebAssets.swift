import Foundation
import Hummingbird

/// The audit view's page (`Resources/web`: index.html, app.js, style.css), shipped as the
/// module's resource bundle and served at `/` by Hummingbird's `FileMiddleware`, which sets the
/// content type from the extension and an ETag and Last-Modified from the file.
enum WebAssets {
    /// The resource bundle's name, as SwiftPM names it (`PACKAGE_TARGET.resources`).
    static let bundleName = "cairn_CairnAPI.resources"

    /// The folder holding index.html: in the resource bundle beside the running binary, where
    /// SwiftPM puts it (`swift build`, the test runner), else in the sources it was built from.
    /// These are the places `Bundle.module` looks, found without its `fatalError` when a binary
    /// was copied elsewhere without its bundle: the API then serves without the page.
    static let directory: String? = {
        let beside = Bundle.main.bundleURL.appendingPathComponent(bundleName).appendingPathComponent("web")
        let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Resources/web")
        return [beside, sources].map(\.path).first { FileManager.default.fileExists(atPath: $0 + "/index.html") }
    }()

    /// Serves the page's files for requests no route answered, or `nil` without them. `no-cache`
    /// makes a browser revalidate each file (a 304 while the ETag holds), so a new binary's page
    /// is never mixed with an old cached script.
    static func middleware() -> FileMiddleware<APIRequestContext, LocalFileSystem>? {
        directory.map { FileMiddleware($0, cacheControl: CacheControl([(MediaType(type: .any), [.noCache])]), searchForIndexHtml: true) }
    }
}
