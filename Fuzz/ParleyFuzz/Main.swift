#if canImport(Glibc)
import Glibc
#endif

// Built two ways (see Fuzz/run.sh):
// - normally: `parley-fuzz TARGET FILE_OR_DIR...` runs saved inputs (a corpus,
//   or a crash to reproduce) through one harness;
// - with Fuzz/toolset.json (-sanitize=fuzzer -DFUZZING): libFuzzer drives the
//   harness named by $PARLEY_FUZZ_TARGET, with libFuzzer's own flags.

#if FUZZING
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

nonisolated(unsafe) var selected = Harness.stun

// SwiftPM links executables with `--defsym main=<Module>_main`; defining that
// symbol ourselves hands control to libFuzzer's driver.
@_cdecl("ParleyFuzz_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    guard let name = getenv("PARLEY_FUZZ_TARGET").map({ String(cString: $0) }),
          let harness = Harness(rawValue: name) else {
        print("set PARLEY_FUZZ_TARGET to one of: \(Harness.allCases.map(\.rawValue).joined(separator: " "))")
        return 2
    }
    selected = harness
    var count = argc
    var vector = argv
    return LLVMFuzzerRunDriver(&count, &vector) { data, size in
        selected.run(UnsafeRawBufferPointer(start: data, count: size))
        return 0
    }
}
#else
@main
struct Regression {
    static func main() {
        let args = CommandLine.arguments.dropFirst()
        guard let name = args.first, let harness = Harness(rawValue: name) else {
            print("usage: parley-fuzz TARGET FILE_OR_DIR...   targets: \(Harness.allCases.map(\.rawValue).joined(separator: " "))")
            exit(2)
        }
        var count = 0
        for path in args.dropFirst() {
            for file in files(at: path) {
                guard let bytes = readFile(file) else {
                    print("cannot read \(file)")
                    exit(1)
                }
                bytes.withUnsafeBytes { harness.run($0) }
                count += 1
            }
        }
        print("\(name): \(count) inputs, no crash")
    }

    static func files(at path: String) -> [String] {
        guard let dir = opendir(path) else { return [path] }
        defer { closedir(dir) }
        var out: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { out.append(path + "/" + name) }
        }
        return out.sorted()
    }

    static func readFile(_ path: String) -> [UInt8]? {
        guard let f = fopen(path, "rb") else { return nil }
        defer { fclose(f) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&chunk, 1, chunk.count, f)
            if n <= 0 { break }
            out.append(contentsOf: chunk[0..<n])
        }
        return out
    }
}
#endif
