-- Argo CD health check for mcp.bastion.dev/McpServer.
-- Install as resource.customizations.health.mcp.bastion.dev_McpServer in argocd-cm.
-- Written for Argo CD's Lua engine (gopher-lua, Lua 5.1, only the base and table libraries).
--
--   Healthy      Ready=True and Reconciled=True for the current generation
--   Degraded     Degraded=True, or Reconciled=False (the operator could not apply the spec)
--   Progressing  anything else: no status yet, status for an older generation, pods not ready
local hs = { status = "Progressing", message = "Waiting for the mcp-bastion operator to reconcile" }

local function describe(c)
  local text = c.type .. "=" .. c.status
  if c.reason ~= nil and c.reason ~= "" then
    text = text .. " (" .. c.reason .. ")"
  end
  if c.message ~= nil and c.message ~= "" then
    text = text .. ": " .. c.message
  end
  return text
end

if obj.status == nil then
  return hs
end

local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end

-- A status written for an older spec says nothing about the current one.
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.message = "Waiting for the operator to observe generation " .. generation
  return hs
end

local conditions = {}
if obj.status.conditions ~= nil then
  for _, c in ipairs(obj.status.conditions) do
    -- A condition that carries its own observedGeneration must be current too.
    if c.type ~= nil and c.status ~= nil
      and (generation == nil or c.observedGeneration == nil or c.observedGeneration >= generation) then
      conditions[c.type] = c
    end
  end
end

local degraded, reconciled, ready = conditions["Degraded"], conditions["Reconciled"], conditions["Ready"]

if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(degraded)
  return hs
end
if reconciled ~= nil and reconciled.status == "False" then
  hs.status = "Degraded"
  hs.message = describe(reconciled)
  return hs
end
if ready ~= nil and ready.status == "True" and reconciled ~= nil and reconciled.status == "True" then
  hs.status = "Healthy"
  hs.message = "Ready"
  if obj.status.url ~= nil then
    hs.message = "Ready at " .. obj.status.url
  end
  return hs
end
if ready ~= nil then
  hs.message = describe(ready)
elseif reconciled ~= nil then
  hs.message = describe(reconciled)
end
return hs
