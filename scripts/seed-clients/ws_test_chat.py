import asyncio
import websockets
import json

async def test_chat():
    uri = "ws://localhost:8000/ws/chat"
    async with websockets.connect(uri) as websocket:
        # Отправляем сообщение
        await websocket.send(json.dumps({
            "message": "Привет, Нейра!"
        }))

        # Получаем стрим ответов
        while True:
            response = await websocket.recv()
            data = json.loads(response)
            print(f"[{data['type']}] {data.get('content', '')}")

            if data['type'] == 'done':
                break

asyncio.run(test_chat())
