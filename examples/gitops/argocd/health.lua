-- Argo CD health check for serin.dev Canary. Install it under the argocd-cm key
-- resource.customizations.health.serin.dev_Canary (argocd-cm.yaml beside this file does).
--
--   Healthy      Initialized, Succeeded (the primary serves the current revision), Terminated
--   Progressing  Initializing, Progressing, Waiting, WaitingPromotion, Promoting, Finalising,
--                Terminating, or a spec the controller has not observed yet
--   Suspended    paused by an operator (kubectl serin pause)
--   Degraded     Failed (rolled back), or the controller cannot run it (condition Stalled=True)
--
-- Only Lua's base and table libraries are used: they are all Argo CD opens for health scripts.
local hs = { status = "Progressing", message = "Waiting for the Serin controller to report" }
if obj.status == nil then
  return hs
end
local status = obj.status
local generation = obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= nil and status.observedGeneration < generation then
  hs.message = "Waiting for the Serin controller to observe generation " .. tostring(generation)
  return hs
end

local phase = status.phase or "Initializing"
local weight = tonumber(status.canaryWeight) or 0
local message = phase
if weight > 0 then
  message = message .. ", canary weight " .. tostring(weight) .. "%"
end
if status.message ~= nil and status.message ~= "" then
  message = message .. ": " .. status.message
end
hs.message = message

local stalled = false
if status.conditions ~= nil then
  for _, condition in ipairs(status.conditions) do
    if condition.type == "Stalled" and condition.status == "True" then
      stalled = true
    end
  end
end

if phase == "Failed" or stalled then
  hs.status = "Degraded"
elseif status.paused == true then
  hs.status = "Suspended"
  hs.message = "Paused by an operator (kubectl serin resume continues): " .. message
elseif phase == "Initialized" or phase == "Succeeded" or phase == "Terminated" then
  hs.status = "Healthy"
else
  hs.status = "Progressing"
end
return hs
