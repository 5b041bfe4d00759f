import Foundation
import Hummingbird

/// The audit view's page (`Resources/web`: index.html, app.js, style.css), shipped as a resource
/// bundle of the package and served at `/` by Hummingbird's `FileMiddleware`, which sets the
/// content type from the extension and an ETag and Last-Modified from the file.
enum WebAssets {
    /// The folder holding index.html: the `web` folder of this module's resource bundle.
    static var directory: String { Bundle.module.bundleURL.appendingPathComponent("web").path }

    /// Serves the page's files for requests no route answered. `no-cache` makes a browser
    /// revalidate each file (a 304 while the ETag holds), so a new `cairn` binary's page is
    /// never mixed with an old cached script.
    static func middleware() -> FileMiddleware<APIRequestContext, LocalFileSystem> {
        FileMiddleware(directory, cacheControl: CacheControl([(MediaType(type: .any), [.noCache])]), searchForIndexHtml: true)
    }
}
