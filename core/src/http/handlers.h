// The API's handlers, one per route (see router.cpp). Each parses its input, calls a core
// service and renders the result; none holds business logic.
#pragma once

namespace paddock {
class Exchange;
}

namespace paddock::handlers {

void Healthz(Exchange& x);
void Readyz(Exchange& x);
void MetricsText(Exchange& x);
void OpenApi(Exchange& x);
void ListPlugins(Exchange& x);

void Me(Exchange& x);
void Login(Exchange& x);
void Logout(Exchange& x);
void CreateTeam(Exchange& x);
void ListTeams(Exchange& x);
void GetTeam(Exchange& x);
void UpdateTeam(Exchange& x);
void GetTeamQuotas(Exchange& x);
void SetSecret(Exchange& x);
void ListSecrets(Exchange& x);
void DeleteSecret(Exchange& x);
void CreateKey(Exchange& x);
void ListKeys(Exchange& x);
void GetKey(Exchange& x);
void RevokeKey(Exchange& x);
void ListAudit(Exchange& x);

void CreateAgent(Exchange& x);
void ListAgents(Exchange& x);
void GetAgent(Exchange& x);
void UpdateAgent(Exchange& x);
void DeleteAgent(Exchange& x);

void CreateSession(Exchange& x);
void ListSessions(Exchange& x);
void GetSession(Exchange& x);
void DeleteSession(Exchange& x);
void SendMessage(Exchange& x);
void Transcript(Exchange& x);
void ListRuns(Exchange& x);
void CancelRun(Exchange& x);

void GetSandbox(Exchange& x);
void ListSnapshots(Exchange& x);
void ExecInSandbox(Exchange& x);
void RestartSession(Exchange& x);

void ListEvents(Exchange& x);
void StreamEvents(Exchange& x);

}  // namespace paddock::handlers
