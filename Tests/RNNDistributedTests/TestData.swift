import Foundation

/// The folder holding the shared corpora: `$RNNLM_DATA_DIR`, else `../shared/data` beside the checkout.
/// A missing folder is a test failure with instructions, never a skip.
func sharedDataDirectory() -> String {
    if let d = ProcessInfo.processInfo.environment["RNNLM_DATA_DIR"], !d.isEmpty { return d }
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    return root.deletingLastPathComponent().appendingPathComponent("shared/data").path
}
