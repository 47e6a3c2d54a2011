import Chat
import MediaServer
import SFU

/// Call signaling's view of the SFU (`Chat.CallMedia`) over the media
/// workers: a call is a room, a participant is a signaling connection.
struct CallMediaAdapter: CallMedia {
    let workers: MediaWorkers

    func join(call: String, participant: ConnectionID, user: String) async {
        await workers.join(room: RoomID(call), participant: ParticipantID(participant), user: user)
    }

    func publish(call: String, participant: ConnectionID, offer: String) async throws(CallMediaError) -> String {
        do {
            return try await workers.publish(room: RoomID(call), participant: ParticipantID(participant), offer: offer)
        } catch {
            throw Self.error(error)
        }
    }

    func subscribeAnswer(call: String, participant: ConnectionID, answer: String) async throws(CallMediaError) {
        do {
            try await workers.subscribeAnswer(room: RoomID(call), participant: ParticipantID(participant), answer: answer)
        } catch {
            throw Self.error(error)
        }
    }

    func updateTrack(call: String, participant: ConnectionID, mid: String, source: String?,
                     muted: Bool?) async throws(CallMediaError) {
        do {
            try await workers.updateTrack(room: RoomID(call), participant: ParticipantID(participant), mid: mid,
                                          source: source.flatMap(TrackSource.init(rawValue:)), muted: muted)
        } catch {
            throw Self.error(error)
        }
    }

    func restartSubscriber(call: String, participant: ConnectionID) async throws(CallMediaError) {
        do {
            try await workers.restartSubscriberICE(room: RoomID(call), participant: ParticipantID(participant))
        } catch {
            throw Self.error(error)
        }
    }

    func leave(call: String, participant: ConnectionID) async {
        await workers.leave(room: RoomID(call), participant: ParticipantID(participant))
    }

    func end(call: String) async {
        await workers.closeRoom(RoomID(call))
    }

    func setRecording(call: String, enabled: Bool) async throws(CallMediaError) {
        do {
            try await workers.setRecording(room: RoomID(call), enabled: enabled)
        } catch {
            throw Self.error(error)
        }
    }

    static func error(_ error: SFUError) -> CallMediaError {
        switch error {
        case .unknownRoom: CallMediaError("the call has no media yet")
        case .unknownParticipant: CallMediaError("this connection is not in the call's media")
        case .badSDP(let reason): CallMediaError(reason)
        case .noOfferOutstanding: CallMediaError("no subscribe_offer is waiting for an answer")
        case .unknownTrack: CallMediaError("no such track")
        case .transport(let reason): CallMediaError("transport: \(reason)")
        case .recording(let reason): CallMediaError("recording: \(reason)")
        }
    }

    /// SFU events that call signaling acts on.
    static func callEvent(_ event: SFUEvent) -> CallMediaEvent? {
        func tracks(_ list: [TrackInfo]) -> [CallTrack] {
            list.map { CallTrack(trackID: $0.trackID, user: $0.user, kind: $0.kind, source: $0.source.rawValue,
                                 muted: $0.muted, mid: $0.mid, msid: $0.msid) }
        }
        switch event {
        case let .subscribeOffer(room, participant, sdp, list):
            return .subscribeOffer(call: room.rawValue, participant: participant.rawValue, sdp: sdp, tracks: tracks(list))
        case let .tracks(room, participant, list):
            return .tracks(call: room.rawValue, participant: participant.rawValue, tracks: tracks(list))
        case let .disconnected(room, participant, _, reason):
            return .lost(call: room.rawValue, participant: participant.rawValue, reason: reason)
        case .connected, .firstMedia:
            return nil
        }
    }
}
