import COpenSSL
@testable import DTLS
import RTCBase
import Testing

/// RFC 5764 §4.2 keying material, cross-checked against an OpenSSL peer the
/// test drives by hand (no engine code on that side).
@Suite("RFC 5764 keying material against a raw OpenSSL peer")
struct RFC5764KeyingTests {
    final class RawPeer {
        let ssl: OpaquePointer
        let rbio: OpaquePointer
        let wbio: OpaquePointer

        init(certificate: DTLSCertificate, profiles: [DTLSSRTPProfile], client: Bool) throws {
            let context = try certificate.context(srtpProfiles: profiles)
            ssl = try #require(SSL_new(context))
            rbio = try #require(BIO_new(BIO_s_mem()))
            wbio = try #require(BIO_new(BIO_s_mem()))
            SSL_set_bio(ssl, rbio, wbio)
            _ = SSL_set_options(ssl, shim_SSL_OP_NO_QUERY_MTU)
            _ = shim_DTLS_set_link_mtu(ssl, 1200)
            if client { SSL_set_connect_state(ssl) } else { SSL_set_accept_state(ssl) }
        }

        deinit { SSL_free(ssl) }

        /// Runs the handshake step and returns OpenSSL's output cut into single records.
        func step(_ incoming: [[UInt8]]) -> (done: Bool, records: [[UInt8]]) {
            for datagram in incoming { _ = BIO_write(rbio, datagram, Int32(datagram.count)) }
            let done = SSL_do_handshake(ssl) == 1
            var bytes: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            while shim_BIO_ctrl_pending(wbio) > 0 {
                let n = BIO_read(wbio, &buffer, Int32(buffer.count))
                if n <= 0 { break }
                bytes += buffer[0..<Int(n)]
            }
            var records: [[UInt8]] = []
            var offset = 0
            while bytes.count - offset >= 13 {
                let length = Int(bytes[offset + 11]) << 8 | Int(bytes[offset + 12])
                let end = min(bytes.count, offset + 13 + length)
                records.append(Array(bytes[offset..<end]))
                offset = end
            }
            return (done, records)
        }

        func export(_ length: Int) -> [UInt8]? {
            var out = [UInt8](repeating: 0, count: length)
            let label = "EXTRACTOR-dtls_srtp"
            guard SSL_export_keying_material(ssl, &out, length, label, label.utf8.count, nil, 0, 0) == 1 else { return nil }
            return out
        }
    }

    @Test("engine server vs raw client: keys are client|server key, client|server salt",
          arguments: DTLSSRTPProfile.allCases)
    func engineServer(_ profile: DTLSSRTPProfile) throws {
        let raw = try RawPeer(certificate: TestCertificates.other, profiles: [profile], client: true)
        let server = try DTLSConnection(role: .server, certificate: TestCertificates.server,
                                        remoteFingerprint: TestCertificates.other.fingerprint)
        var toRaw: [[UInt8]] = []
        var rawDone = false
        var serverKeys: DTLSSRTPKeys?
        for _ in 0..<10 where !(rawDone && serverKeys != nil) {
            let (done, records) = raw.step(toRaw)
            rawDone = done
            toRaw = []
            for record in records { server.handleReceive(record, now: .zero) }
            while let datagram = server.pollTransmit() { toRaw.append(datagram) }
            while let event = server.pollEvent() {
                if case .connected(let keys) = event { serverKeys = keys }
            }
        }
        #expect(rawDone)
        let keys = try #require(serverKeys)
        #expect(keys.profile == profile)
        let k = 16, s = profile.masterSaltLength
        let material = try #require(raw.export(2 * (k + s)))
        #expect(keys.remoteMasterKey == Array(material[0..<k]))           // client write key
        #expect(keys.localMasterKey == Array(material[k..<2 * k]))        // server write key
        #expect(keys.remoteMasterSalt == Array(material[2 * k..<2 * k + s]))
        #expect(keys.localMasterSalt == Array(material[2 * k + s..<2 * (k + s)]))
    }

    @Test("engine client vs raw server", arguments: DTLSSRTPProfile.allCases)
    func engineClient(_ profile: DTLSSRTPProfile) throws {
        let raw = try RawPeer(certificate: TestCertificates.other, profiles: [profile], client: false)
        let client = try DTLSConnection(role: .client, certificate: TestCertificates.client,
                                        remoteFingerprint: TestCertificates.other.fingerprint)
        client.start(now: .zero)
        var clientKeys: DTLSSRTPKeys?
        var rawDone = false
        for _ in 0..<10 where !(rawDone && clientKeys != nil) {
            var toRaw: [[UInt8]] = []
            while let datagram = client.pollTransmit() { toRaw.append(datagram) }
            let (done, records) = raw.step(toRaw)
            rawDone = done
            for record in records { client.handleReceive(record, now: .zero) }
            while let event = client.pollEvent() {
                if case .connected(let keys) = event { clientKeys = keys }
            }
        }
        let keys = try #require(clientKeys)
        let k = 16, s = profile.masterSaltLength
        let material = try #require(raw.export(2 * (k + s)))
        #expect(keys.localMasterKey == Array(material[0..<k]))
        #expect(keys.remoteMasterKey == Array(material[k..<2 * k]))
        #expect(keys.localMasterSalt == Array(material[2 * k..<2 * k + s]))
        #expect(keys.remoteMasterSalt == Array(material[2 * k + s..<2 * (k + s)]))
    }
}
