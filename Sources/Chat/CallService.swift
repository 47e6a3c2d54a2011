/// The SFU as call signaling sees it. A participant is one signaling
/// connection in a call (its `ConnectionID`). The `parley` executable
/// adapts the media workers to this.
public protocol CallMedia: Sendable {
    func join(call: String, participant: ConnectionID, user: String) async
    /// The SFU's answer to a publish offer.
    func publish(call: String, participant: ConnectionID, offer: String) async throws(CallMediaError) -> String
    func subscribeAnswer(call: String, participant: ConnectionID, answer: String) async throws(CallMediaError)
    func updateTrack(call: String, participant: ConnectionID, mid: String, source: String?, muted: Bool?) async throws(CallMediaError)
    /// New ICE credentials on the participant's subscribe connection (a new offer follows).
    func restartSubscriber(call: String, participant: ConnectionID) async throws(CallMediaError)
    func leave(call: String, participant: ConnectionID) async
    func end(call: String) async
    /// Starts or stops writing the call's tracks to files.
    func setRecording(call: String, enabled: Bool) async throws(CallMediaError)
}

/// Why the SFU refused (malformed SDP, an answer without an offer, …).
public struct CallMediaError: Error, Sendable, Equatable {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
}

/// What the SFU tells call signaling.
public enum CallMediaEvent: Sendable {
    case subscribeOffer(call: String, participant: ConnectionID, sdp: String, tracks: [CallTrack])
    case tracks(call: String, participant: ConnectionID, tracks: [CallTrack])
    /// One of the participant's peer connections ended (ICE consent lost,
    /// DTLS closed): the participant leaves (PROTOCOL.md).
    case lost(call: String, participant: ConnectionID, reason: String)
}

/// Call signaling (PROTOCOL.md, Calls): starting, ringing, accepting,
/// rejecting and ending calls, who may join and receive media, when a call
/// ends, and its history. Media goes through `CallMedia` (the SFU).
///
/// One actor owns every live call, so the rules hold under concurrent
/// requests; each step is recorded in call history as it happens.
public actor CallService {
    public struct Settings: Sendable {
        /// How long an unanswered call rings before it ends with `timeout`.
        public var ringTimeout: Duration = .seconds(30)
        /// Whether `record` may be asked for (the server has `--record-dir`).
        public var recordingAvailable = false
        public init(ringTimeout: Duration = .seconds(30), recordingAvailable: Bool = false) {
            self.ringTimeout = ringTimeout
            self.recordingAvailable = recordingAvailable
        }
    }

    final class LiveCall {
        var record: CallRecord
        /// Connections in the media, and their users, in joining order.
        var participants: [(connection: ConnectionID, user: String)] = []
        var declined: Set<String> = []
        var answered = false
        var recording: Bool
        var timer: Task<Void, Never>?

        init(record: CallRecord) {
            self.record = record
            recording = record.recorded
        }

        var isGroup: Bool { record.groupID != nil }
        var invited: [String] { record.parties.filter { !$0.isCaller }.map(\.username) }
        func isParticipant(_ c: ConnectionID) -> Bool { participants.contains { $0.connection == c } }
        func user(of c: ConnectionID) -> String? { participants.first { $0.connection == c }?.user }
        var distinctUsers: Set<String> { Set(participants.map(\.user)) }
    }

    let chat: ChatService
    let media: any CallMedia
    public let settings: Settings
    private var live: [String: LiveCall] = [:]
    private var byConnection: [ConnectionID: String] = [:]

    public init(chat: ChatService, media: any CallMedia, settings: Settings = Settings()) {
        self.chat = chat
        self.media = media
        self.settings = settings
    }

    var delivery: any Delivery { chat.delivery }
    var store: any ChatStore { chat.store }

    /// Ends calls a previous run left open (history says so).
    public func recoverAfterRestart() async throws -> Int {
        try await store.endOpenCalls(at: chat.now(), reason: "server_restart")
    }

    // MARK: - Starting

    public struct Started: Sendable {
        public var record: CallRecord
        /// The callee is in another call: end it with `busy` once
        /// `call_started` is out (`finishBusy`).
        public var busy: Bool
    }

    public func start(by caller: Caller, callee rawCallee: String?, groupName: String?, media wanted: [String]?,
                      record: Bool) async throws -> Started {
        let kinds = wanted ?? ["audio", "video"]
        guard !kinds.isEmpty, kinds.allSatisfy({ $0 == "audio" || $0 == "video" }), Set(kinds).count == kinds.count else {
            throw ChatError.badRequest("'media' must list 'audio' and/or 'video'")
        }
        guard byConnection[caller.connectionID] == nil else {
            throw ChatError.conflict("this connection is already in a call")
        }
        if record, !settings.recordingAvailable {
            throw ChatError.forbidden("recording is not enabled on this server")
        }
        var draft = CallDraft(caller: caller.username, callee: nil, groupID: nil, groupName: nil, media: kinds,
                              invited: [], startedAt: chat.now(), recorded: record)
        switch (rawCallee, groupName) {
        case let (raw?, nil):
            guard let callee = Names.normalizedUsername(raw), try await chat.userExists(callee) else {
                throw ChatError.notFound("unknown user '\(raw)'")
            }
            guard callee != caller.username else { throw ChatError.badRequest("cannot call yourself") }
            draft.callee = callee
            draft.invited = [callee]
        case let (nil, name?):
            let group = try await chat.memberGroup(named: name, caller: caller.username)
            draft.groupID = group.id
            draft.groupName = group.name
            draft.invited = group.members.filter { $0 != caller.username }
        case (nil, nil):
            throw ChatError.badRequest("missing field 'callee' or 'groupname'")
        default:
            throw ChatError.badRequest("give 'callee' or 'groupname', not both")
        }
        let stored = try await store.insertCall(draft)
        let call = LiveCall(record: stored)
        let id = stored.id
        live[id] = call
        byConnection[caller.connectionID] = id
        call.participants.append((caller.connectionID, caller.username))
        await media.join(call: id, participant: caller.connectionID, user: caller.username)
        if let callee = draft.callee, isInCall(callee, other: id) {
            return Started(record: stored, busy: true)
        }
        for user in draft.invited {
            delivery.deliver(.call(.incoming(callID: id, caller: caller.username, media: kinds, groupName: draft.groupName,
                                             recorded: record)),
                             to: user, excluding: nil)
        }
        let timeout = settings.ringTimeout
        call.timer = Task { [weak self] in
            try? await Task.sleep(for: timeout)
            guard !Task.isCancelled else { return }
            await self?.ringTimedOut(id)
        }
        if record {
            try? await media.setRecording(call: id, enabled: true)
            delivery.deliver(.call(.recording(callID: id, enabled: true, by: caller.username)), to: caller.username,
                             connection: caller.connectionID)
        }
        return Started(record: stored, busy: false)
    }

    /// Whether `user` is in the media of a call other than `other`.
    private func isInCall(_ user: String, other: String) -> Bool {
        live.contains { $0.key != other && $0.value.participants.contains { $0.user == user } }
    }

    public func finishBusy(_ id: String) async {
        guard let call = live[id] else { return }
        let seq = call.record.seq, callee = call.record.callee ?? ""
        await persist { try await $0.callDeclined(seq: seq, username: callee) }
        await finish(call, reason: "busy")
    }

    private func ringTimedOut(_ id: String) async {
        guard let call = live[id], !call.answered else { return }
        call.timer = nil  // this is the timer's own task: finishing must not cancel it
        await finish(call, reason: "timeout")
    }

    /// Writes call history even from a cancelled task (a connection's task
    /// ending, shutdown): the record of what happened must not be lost
    /// because the request that caused it went away.
    private func persist(_ body: @escaping @Sendable (any ChatStore) async throws -> Void) async {
        let store = self.store
        await Task.detached { try? await body(store) }.value
    }

    // MARK: - Answering

    /// The call a connection may act on, or the error the contract asks for:
    /// `not_found` for an unknown or ended call, `forbidden` for a user who
    /// is not its caller, callee or a member of its group.
    private func callForParty(_ callID: String, _ caller: Caller) async throws -> LiveCall {
        guard let call = live[callID] else { throw ChatError.notFound("unknown call '\(callID)'") }
        if call.record.caller == caller.username || call.invited.contains(caller.username) { return call }
        if let groupID = call.record.groupID, let group = try await store.group(id: groupID),
           group.members.contains(caller.username) {
            return call
        }
        throw ChatError.forbidden("not a party to call '\(callID)'")
    }

    private func participantCall(_ callID: String, _ caller: Caller) async throws -> LiveCall {
        let call = try await callForParty(callID, caller)
        guard call.isParticipant(caller.connectionID) else {
            throw ChatError.forbidden("this connection is not in call '\(callID)'")
        }
        return call
    }

    /// Joins the connection to the call's media. Returns who is in it.
    public func accept(by caller: Caller, callID: String) async throws -> [String] {
        let call = try await callForParty(callID, caller)
        if call.isParticipant(caller.connectionID) { return call.participants.map(\.user) }
        if let other = byConnection[caller.connectionID], other != callID {
            throw ChatError.conflict("this connection is already in call '\(other)'")
        }
        if !call.isGroup, caller.username == call.record.caller {
            throw ChatError.forbidden("the caller does not accept their own call")
        }
        call.participants.append((caller.connectionID, caller.username))
        byConnection[caller.connectionID] = callID
        if !call.record.parties.contains(where: { $0.username == caller.username }) {
            // A member added to the group since the call started is a party from now on.
            call.record.parties.append(CallParty(username: caller.username, isCaller: false))
        }
        if caller.username != call.record.caller, !call.answered {
            call.answered = true
            if !call.isGroup { call.timer?.cancel() }
        }
        if call.isGroup { call.timer?.cancel() }
        call.declined.remove(caller.username)
        await media.join(call: callID, participant: caller.connectionID, user: caller.username)
        let seq = call.record.seq, user = caller.username, at = chat.now()
        await persist { try await $0.callJoined(seq: seq, username: user, at: at) }
        guard live[callID] === call, call.isParticipant(caller.connectionID) else {
            // The call ended while the media joined.
            await media.leave(call: callID, participant: caller.connectionID)
            throw ChatError.notFound("call '\(callID)' has ended")
        }
        if !call.isGroup {
            // The callee's other devices stop ringing.
            delivery.deliver(.call(.ended(callID: callID, reason: "answered_elsewhere")), to: caller.username,
                             excluding: caller.connectionID)
        }
        for p in call.participants where p.connection != caller.connectionID {
            delivery.deliver(.call(.joined(callID: callID, user: caller.username)), to: p.user, connection: p.connection)
        }
        if call.recording {
            // Everyone in a recorded call is told, whenever they join.
            delivery.deliver(.call(.recording(callID: callID, enabled: true, by: call.record.caller)), to: caller.username,
                             connection: caller.connectionID)
        }
        return call.participants.map(\.user)
    }

    /// The callee (or a group member) declines. A 1:1 call ends; a group
    /// call ends once every invitee declined before anyone joined.
    @discardableResult
    public func reject(by caller: Caller, callID: String, reason: String?) async throws -> String {
        let call = try await callForParty(callID, caller)
        guard caller.username != call.record.caller else {
            throw ChatError.badRequest("the caller ends a call with 'call_end'")
        }
        guard !call.isParticipant(caller.connectionID) else {
            throw ChatError.badRequest("already in the call: use 'call_end' to leave")
        }
        if !call.isGroup, call.answered {
            // Another device of the callee answered: this one was told
            // `answered_elsewhere` and cannot end the call by declining.
            throw ChatError.conflict("call '\(callID)' was answered on another connection")
        }
        call.declined.insert(caller.username)
        let seq = call.record.seq, user = caller.username
        await persist { try await $0.callDeclined(seq: seq, username: user) }
        let why = reason.flatMap { $0 == "busy" ? "busy" : nil } ?? "rejected"
        if !call.isGroup {
            await finish(call, reason: why, excluding: caller.connectionID)
            return why
        }
        // The member's other devices stop ringing; the call goes on for the others.
        delivery.deliver(.call(.ended(callID: callID, reason: why)), to: caller.username, excluding: caller.connectionID)
        let joinedOthers = call.participants.contains { $0.user != call.record.caller }
        if !joinedOthers, Set(call.invited).isSubset(of: call.declined) {
            await finish(call, reason: "rejected", excluding: caller.connectionID)
        }
        return why
    }

    /// `call_end`: a 1:1 call ends for both; in a group call the connection
    /// leaves. Returns the reason the requester is answered with.
    @discardableResult
    public func end(by caller: Caller, callID: String) async throws -> String {
        let call = try await callForParty(callID, caller)
        guard call.isParticipant(caller.connectionID) else {
            throw ChatError.forbidden("this connection is not in call '\(callID)'")
        }
        if !call.isGroup {
            await finish(call, reason: "hangup", excluding: caller.connectionID)
            return "hangup"
        }
        let ended = await leave(call, connection: caller.connectionID, reason: "hangup", answering: true)
        return ended ? "hangup" : "left"
    }

    /// A signaling connection closed: it leaves its call.
    public func connectionClosed(_ connection: ConnectionID) async {
        guard let id = byConnection[connection], let call = live[id] else { return }
        await leave(call, connection: connection, reason: "disconnected")
    }

    /// Media events from the SFU.
    public func handle(_ event: CallMediaEvent) async {
        switch event {
        case let .subscribeOffer(callID, participant, sdp, tracks):
            guard let call = live[callID], let user = call.user(of: participant) else { return }
            delivery.deliver(.call(.subscribeOffer(callID: callID, sdp: sdp)), to: user, connection: participant)
            delivery.deliver(.call(.tracks(callID: callID, tracks: tracks)), to: user, connection: participant)
        case let .tracks(callID, participant, tracks):
            guard let call = live[callID], let user = call.user(of: participant) else { return }
            delivery.deliver(.call(.tracks(callID: callID, tracks: tracks)), to: user, connection: participant)
        case let .lost(callID, participant, _):
            guard let call = live[callID], call.isParticipant(participant) else { return }
            await leave(call, connection: participant, reason: "connection_lost")
        }
    }

    /// One connection leaves the call's media. A 1:1 call ends with it; a
    /// group call ends when fewer than two remain once answered, or when
    /// the caller leaves before anyone joined.
    /// Returns true when the call ended with it. `answering`: the leaver is
    /// answered by the caller of this (no `call_ended` pushed to it).
    @discardableResult
    private func leave(_ call: LiveCall, connection: ConnectionID, reason: String, answering: Bool = false) async -> Bool {
        guard let user = call.user(of: connection) else { return false }
        let id = call.record.id
        call.participants.removeAll { $0.connection == connection }
        byConnection[connection] = nil
        await media.leave(call: id, participant: connection)
        let remaining = call.participants.count
        if !call.isGroup || (call.answered && remaining < 2) || remaining == 0
            || (!call.answered && user == call.record.caller) {
            await finish(call, reason: reason, excluding: answering ? connection : nil)
            return true
        }
        if !answering {
            delivery.deliver(.call(.ended(callID: id, reason: "left")), to: user, connection: connection)
        }
        for p in call.participants {
            delivery.deliver(.call(.left(callID: id, user: user)), to: p.user, connection: p.connection)
        }
        return false
    }

    /// Ends the call for everyone: its parties' connections (but
    /// `excluding`, which is answered directly) get `call_ended`.
    private func finish(_ call: LiveCall, reason: String, excluding: ConnectionID? = nil) async {
        let id = call.record.id
        guard live[id] === call else { return }
        live[id] = nil
        call.timer?.cancel()
        for p in call.participants { byConnection[p.connection] = nil }
        call.participants = []
        await media.end(call: id)
        let seq = call.record.seq, at = chat.now()
        await persist { try await $0.endCall(seq: seq, at: at, reason: reason) }
        var told: Set<String> = []
        for user in [call.record.caller] + call.invited where told.insert(user).inserted {
            delivery.deliver(.call(.ended(callID: id, reason: reason)), to: user, excluding: excluding)
        }
    }

    // MARK: - Media requests

    public func publish(by caller: Caller, callID: String, offer: String) async throws -> String {
        _ = try await participantCall(callID, caller)
        do {
            return try await media.publish(call: callID, participant: caller.connectionID, offer: offer)
        } catch {
            throw ChatError.badRequest(error.reason)
        }
    }

    public func subscribeAnswer(by caller: Caller, callID: String, answer: String) async throws {
        _ = try await participantCall(callID, caller)
        do {
            try await media.subscribeAnswer(call: callID, participant: caller.connectionID, answer: answer)
        } catch {
            throw ChatError.badRequest(error.reason)
        }
    }

    public func publishTrack(by caller: Caller, callID: String, mid: String, source: String?, muted: Bool?) async throws {
        _ = try await participantCall(callID, caller)
        do {
            try await media.updateTrack(call: callID, participant: caller.connectionID, mid: mid, source: source, muted: muted)
        } catch {
            throw ChatError.badRequest(error.reason)
        }
    }

    /// Trickled candidates are accepted from participants and need nothing
    /// more: the SFU is ICE-lite and learns addresses from the checks it
    /// receives (RFC 8445 §2.5).
    public func iceCandidate(by caller: Caller, callID: String) async throws {
        _ = try await participantCall(callID, caller)
    }

    public func restartICE(by caller: Caller, callID: String) async throws {
        _ = try await participantCall(callID, caller)
        do {
            try await media.restartSubscriber(call: callID, participant: caller.connectionID)
        } catch {
            throw ChatError.badRequest(error.reason)
        }
    }

    /// Relays a peer-to-peer call's signaling between two of its parties.
    public func signal(by caller: Caller, callID: String, to rawTarget: String, payload: JSONObject) async throws {
        let call = try await callForParty(callID, caller)
        guard let target = Names.normalizedUsername(rawTarget),
              target == call.record.caller || call.invited.contains(target) else {
            throw ChatError.notFound("'\(rawTarget)' is not a party to call '\(callID)'")
        }
        delivery.deliver(.call(.signal(callID: callID, from: caller.username, payload: payload)), to: target,
                         excluding: target == caller.username ? caller.connectionID : nil)
    }

    /// Starts or stops recording (any participant may; everyone in the call is told).
    public func setRecording(by caller: Caller, callID: String, enabled: Bool) async throws {
        let call = try await participantCall(callID, caller)
        guard settings.recordingAvailable else { throw ChatError.forbidden("recording is not enabled on this server") }
        do {
            try await media.setRecording(call: callID, enabled: enabled)
        } catch {
            throw ChatError.badRequest(error.reason)
        }
        call.recording = enabled
        if enabled {
            let seq = call.record.seq
            await persist { try await $0.setCallRecorded(seq: seq, recorded: true) }
        }
        for p in call.participants {
            delivery.deliver(.call(.recording(callID: callID, enabled: enabled, by: caller.username)), to: p.user,
                             connection: p.connection)
        }
    }

    /// Turns recording on for a call that asked for it at `call_start`.
    public func startRecordingIfAsked(_ callID: String) async {
        guard let call = live[callID], call.recording else { return }
        try? await media.setRecording(call: callID, enabled: true)
    }

    // MARK: - History

    public func history(for caller: Caller, limit: Int, before: String?) async throws -> [CallRecord] {
        guard (1...200).contains(limit) else { throw ChatError.badRequest("field 'limit' must be 1–200") }
        var beforeSeq: Int64?
        if let before {
            guard let seq = CallRecord.parse(before) else { throw ChatError.notFound("unknown call '\(before)'") }
            beforeSeq = seq
        }
        return try await store.calls(for: caller.username, beforeSeq: beforeSeq, limit: limit)
    }

    /// Live calls (for `/metrics` and tests).
    public var liveCallCount: Int { live.count }
}
