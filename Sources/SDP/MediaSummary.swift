import RTCBase

/// What the SFU needs to know about one offered m-section to route its RTP.
public struct MediaSummary: Hashable, Sendable {
    public var index: Int
    public var kind: MediaKind
    public var mid: Mid?
    /// The offer's direction (RFC 3264 default sendrecv applied).
    public var direction: MediaDirection
    /// True when the offerer disabled the section (port 0, not bundle-only).
    public var isRejected: Bool
    /// The codec the SFU picks (Opus / VP8 + RTX), nil if none is offered.
    public var codec: CodecChoice?
    /// Media SSRCs from `a=ssrc`, RTX SSRCs excluded, in order.
    public var ssrcs: [SSRC]
    /// Primary SSRC → RTX SSRC, from `a=ssrc-group:FID` (RFC 5576 §7.2).
    public var rtxSSRCs: [SSRC: SSRC]
    /// SSRCs of legacy `a=ssrc-group:SIM` simulcast, lowest layer first.
    public var simulcastSSRCs: [SSRC]
    /// The send rids named by `a=simulcast` (RFC 8853), or every send rid.
    public var rids: [RID]
    /// `a=ssrc:<x> cname:` (RFC 5576 §6.1), if given.
    public var cname: String?
    public var msid: MediaStreamID?
    /// Header extension URI → id, for every offered extension.
    public var headerExtensionIDs: [String: UInt16]

    public func headerExtensionID(_ uri: String) -> UInt16? { headerExtensionIDs[uri] }
    public var midExtensionID: UInt16? { headerExtensionIDs[HeaderExtensionURI.mid] }
    public var ridExtensionID: UInt16? { headerExtensionIDs[HeaderExtensionURI.rtpStreamID] }
    public var repairedRIDExtensionID: UInt16? { headerExtensionIDs[HeaderExtensionURI.repairedRTPStreamID] }
    public var absSendTimeExtensionID: UInt16? { headerExtensionIDs[HeaderExtensionURI.absSendTime] }
    public var transportCCExtensionID: UInt16? { headerExtensionIDs[HeaderExtensionURI.transportWideCC] }
    public var audioLevelExtensionID: UInt16? { headerExtensionIDs[HeaderExtensionURI.audioLevel] }
}

extension MediaDescription {
    /// Summarizes this section for the SFU (see `MediaSummary`).
    public func summary(index: Int, acceptVideoRTX: Bool = true) -> MediaSummary {
        var rtxMap: [SSRC: SSRC] = [:]
        var sim: [SSRC] = []
        for g in ssrcGroups {
            if g.semantics == SSRCGroup.fid, g.ssrcs.count == 2 {
                rtxMap[g.ssrcs[0]] = g.ssrcs[1]
            } else if g.semantics == SSRCGroup.sim, sim.isEmpty {
                sim = g.ssrcs
            }
        }
        let rtxSet = Set(rtxMap.values)
        var cname: String?
        for a in ssrcAttributes where a.name == "cname" {
            cname = a.value
            break
        }
        var ids: [String: UInt16] = [:]
        for e in extensionMaps where ids[e.uri] == nil { ids[e.uri] = e.id }
        let ridList: [RID]
        if let sc = simulcast, !sc.send.isEmpty {
            ridList = sc.send.flatMap { $0.map(\.rid) }
        } else {
            ridList = rids.filter { $0.direction == .send }.map(\.rid)
        }
        return MediaSummary(
            index: index, kind: kind, mid: mid, direction: effectiveDirection, isRejected: isRejected,
            codec: CodecChoice.select(from: self, acceptRTX: acceptVideoRTX),
            ssrcs: ssrcs.filter { !rtxSet.contains($0) }, rtxSSRCs: rtxMap, simulcastSSRCs: sim,
            rids: ridList, cname: cname, msid: msid, headerExtensionIDs: ids)
    }
}

extension SessionDescription {
    /// One summary per m-section, in order.
    public func mediaSummaries(acceptVideoRTX: Bool = true) -> [MediaSummary] {
        media.enumerated().map { $0.element.summary(index: $0.offset, acceptVideoRTX: acceptVideoRTX) }
    }
}
